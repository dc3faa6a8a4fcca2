"""The node agent: a kubelet stand-in that makes Pods run on any Kubernetes API server
(the sandbox's, or a real kube-apiserver) as local processes. See agent.py."""

from koos_sandbox.node_agent.agent import NodeAgent
from koos_sandbox.node_agent.client import Credentials, load_kubeconfig

__all__ = ["Credentials", "NodeAgent", "load_kubeconfig"]
