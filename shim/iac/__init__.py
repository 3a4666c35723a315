"""The Ops side: Terraform variables from a kernel's contract, a gated plan/apply runner, the plan
policy gate, and a CDK Terrain construct over the HCL modules in terraform/modules.

Each module has one job; heavy dependencies (python-hcl2, cdktn) are imported only where used.
"""
