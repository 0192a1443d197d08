"""The Kubernetes adapter: the only place pykube-ng (and its requests session) is used.

Called by the Kubernetes runtime (``aether.worker.runtimes.kubernetes``): build a
:class:`KubeClient` from a kubeconfig or the pod's service account, ``apply`` manifests
idempotently, read objects and pod logs. Every failure is a :class:`KubeError`.
"""

from aether.kube.apply import Applied, KubeNotOwned, apply, ensure_owned, holds
from aether.kube.client import (
    DEPLOYMENTS,
    INGRESSES,
    KINDS,
    PODS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    Kind,
    KubeClient,
    label_selector,
    load_config,
)
from aether.kube.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
)
from aether.kube.logs import LogUnavailable, follow_log, log_params, read_log

__all__ = [
    "DEPLOYMENTS",
    "INGRESSES",
    "KINDS",
    "PODS",
    "REPLICASETS",
    "SECRETS",
    "SERVICES",
    "Applied",
    "Kind",
    "KubeClient",
    "KubeConflict",
    "KubeError",
    "KubeForbidden",
    "KubeInvalid",
    "KubeNotFound",
    "KubeNotOwned",
    "KubeUnavailable",
    "LogUnavailable",
    "apply",
    "ensure_owned",
    "follow_log",
    "holds",
    "label_selector",
    "load_config",
    "log_params",
    "read_log",
]
