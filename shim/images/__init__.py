"""The golden image hierarchy: build contexts, digests and builds for Level 0, 1 and 2 images.

Level 0 (hardened base) and Level 1 (frozen ML runtime) are the platform team's; Level 2 is one
kernel on top of a Level-1 image. The Dockerfiles live in the repository's ``images/`` directory
(shipped in the wheel as ``shim/_data/images``); this package assembles their build contexts and
drives any Docker-API engine (Docker, or Podman's compatible socket) through the docker SDK.
"""
