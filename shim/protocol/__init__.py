"""The Open Inference Protocol (KServe v2) data model: datatypes and tensor encoding."""
