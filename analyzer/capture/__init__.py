"""Recording a test session (issue 4): the capture layer.

    analyze record  [-i lo] [-w capture.pcapng] [--phone IP] [--duration S]   dumpcap/tcpdump/scapy
    analyze serve   [--phone IP] [--log server.log]        UDP echo, TCP echo, dialer (Go log)
    analyze emulate --profile huawei|ios|plain [--background-after N] [--resume-after M]
    analyze session --profile huawei|ios|plain [--out DIR] [--duration S]   all of it + analyze

Modules: filters (BPF text), recorder (+ pcapng for tcpdump output), testbed (server side),
emulate (phone side) with teardown (the kernel mechanisms), goerrors and logformat (the
texts and line formats written), session (orchestration), commands (argument parsing).
"""
