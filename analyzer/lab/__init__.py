"""A real network inside the test suite.

Network namespaces with Apple-like servers, a router that is firewall, DNS
resolver and interception proxy, and a client "Mac" whose traffic tcpdump
captures. `analyzer.lab.runner.run_lab()` runs every scenario and writes one
capture per scenario with its truth (what was built, in the report's words).
"""
