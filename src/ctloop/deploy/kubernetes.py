"""Render a plan as Kubernetes manifests (a cluster).

One Secret holds the settings every ctloop pod reads; each service becomes a
Deployment (PostgreSQL a StatefulSet), and those others connect to get a
Service. Dask workers request the CPUs and memory they advertise as Dask
resources, so the scheduler's placement matches what Kubernetes reserved.
"""

from __future__ import annotations

from typing import Any

from ctloop.deploy.plan import DeploymentPlan, Service, size_in_bytes

__all__ = ["render_kubernetes"]

SECRET = "ctloop-settings"
_PART_OF = {"app.kubernetes.io/part-of": "ctloop"}


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, **_PART_OF}


def _container(plan: DeploymentPlan, svc: Service) -> dict[str, Any]:
    container: dict[str, Any] = {"name": svc.name, "image": svc.image or plan.image}
    if svc.command:
        container["command"] = list(svc.command)
    if not svc.image:
        container["envFrom"] = [{"secretRef": {"name": SECRET}}]
    if svc.env:
        container["env"] = [{"name": k, "value": v} for k, v in svc.env.items()]
    if svc.ports:
        container["ports"] = [{"containerPort": p} for p in svc.ports]
    if svc.cpus or svc.memory:
        amount: dict[str, str] = {}
        if svc.cpus:
            amount["cpu"] = f"{svc.cpus:g}"
        if svc.memory:
            amount["memory"] = str(size_in_bytes(svc.memory))
        container["resources"] = {"requests": dict(amount), "limits": dict(amount)}
    if svc.volumes:
        container["volumeMounts"] = [{"name": n, "mountPath": p} for n, p in svc.volumes.items()]
    return container


def _workload(plan: DeploymentPlan, svc: Service, namespace: str) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [_container(plan, svc)]}
    meta = {"name": svc.name, "namespace": namespace, "labels": _labels(svc.name)}
    if svc.pending:
        meta["annotations"] = {"ctloop.dev/pending-command": "true"}
    spec: dict[str, Any] = {
        "replicas": svc.replicas,
        "selector": {"matchLabels": _labels(svc.name)},
        "template": {"metadata": {"labels": _labels(svc.name)}, "spec": pod},
    }
    kind = "Deployment"
    if svc.volumes:  # only the bundled database keeps state on Kubernetes
        kind = "StatefulSet"
        spec["serviceName"] = svc.name
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": name},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Gi"}},
                },
            }
            for name in svc.volumes
        ]
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def _service(svc: Service, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": namespace, "labels": _labels(svc.name)},
        "spec": {
            "selector": _labels(svc.name),
            "ports": [{"name": f"p{p}", "port": p, "targetPort": p} for p in svc.ports],
        },
    }


def render_kubernetes(plan: DeploymentPlan, namespace: str = "ctloop") -> list[dict[str, Any]]:
    """The manifests, in the order ``kubectl apply -f`` should create them."""
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": namespace, "labels": dict(_PART_OF)},
            "type": "Opaque",
            "stringData": dict(plan.settings_env),
        },
    ]
    for svc in plan.services:
        docs.append(_workload(plan, svc, namespace))
        if svc.ports:
            docs.append(_service(svc, namespace))
    return docs
