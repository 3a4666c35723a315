"""The shim server: one generic Open Inference Protocol (KServe v2 REST) server for any kernel."""
