"""The descriptor pool that kernelshim's generated gRPC messages are registered in.

The generated modules do not use protobuf's default pool (``descriptor_pool.Default()``):
``tritonclient.grpc`` registers Triton's own definitions of the same fully-qualified names
(``inference.ModelInferRequest``, ``inference.GRPCInferenceService``, ...) there, and a pool
refuses a second definition of a name ("duplicate symbol"), so a test or tool that imports
both our stubs and tritonclient.grpc in one process could not import the second. The wire
format does not depend on the pool: messages from either pool encode and decode the same bytes.

Pass ``POOL`` where an API takes a pool, e.g. gRPC server reflection.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
