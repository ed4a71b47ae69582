"""Render a plan as Kubernetes manifests (a cluster).

A ConfigMap holds the settings every ctloop pod reads; the secrets live in a
Secret the manifests only reference (``ctloop-secrets``, created from
``secrets.env`` with ``kubectl create secret generic ctloop-secrets
--from-env-file=secrets.env``), so ``kubernetes.yaml`` holds no password.
Each service becomes a Deployment (stateful stores a StatefulSet) with
liveness and readiness probes and resource requests; those others connect to
get a ClusterIP Service, and only the prediction service is exposed (a
LoadBalancer on the address asked for). Dask workers request the CPUs and
memory they advertise as Dask resources, so the scheduler's placement matches
what Kubernetes reserved.
"""

from __future__ import annotations

from ctloop.core.jsontypes import JSONValue
from ctloop.deploy.plan import DeploymentPlan, Probe, Service, size_in_bytes

__all__ = ["CONFIG", "SECRET", "render_kubernetes"]

CONFIG = "ctloop-settings"
SECRET = "ctloop-secrets"
_PART_OF = {"app.kubernetes.io/part-of": "ctloop"}


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, **_PART_OF}


def _probe(probe: Probe, *, initial: int) -> dict[str, JSONValue]:
    how: dict[str, JSONValue]
    if probe.command:
        how = {"exec": {"command": list(probe.command)}}
    else:
        how = {"httpGet": {"path": probe.path, "port": probe.port}}
    return {**how, "initialDelaySeconds": initial, "periodSeconds": 10, "timeoutSeconds": 5,
            "failureThreshold": 3}


def _container(plan: DeploymentPlan, svc: Service) -> dict[str, JSONValue]:
    container: dict[str, JSONValue] = {"name": svc.name, "image": svc.image or plan.image}
    if not svc.image and "/" not in plan.image.split(":")[0]:
        container["imagePullPolicy"] = "IfNotPresent"  # a local name: loaded into the nodes
    if svc.command:
        container["command"] = list(svc.command)
    if not svc.image:
        container["envFrom"] = [{"configMapRef": {"name": CONFIG}},
                                {"secretRef": {"name": SECRET}}]
    env: list[dict[str, JSONValue]] = [{"name": k, "value": v} for k, v in svc.env.items()]
    if svc.image:
        env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": k}}}
                for k in svc.secret_env]
    if env:
        container["env"] = env
    if svc.ports:
        container["ports"] = [{"containerPort": p} for p in svc.ports]
    requests = {"cpu": f"{svc.request_cpus:g}",
                "memory": str(size_in_bytes(svc.request_memory))}
    limits: dict[str, str] = {}
    if svc.cpus:
        limits["cpu"] = f"{svc.cpus:g}"
    if svc.memory:
        limits["memory"] = str(size_in_bytes(svc.memory))
    container["resources"] = {"requests": requests, **({"limits": limits} if limits else {})}
    if svc.liveness is not None:
        container["livenessProbe"] = _probe(svc.liveness, initial=30)
    if svc.readiness is not None:
        container["readinessProbe"] = _probe(svc.readiness, initial=5)
    mounts = {**svc.volumes, **svc.shared}
    if mounts:
        container["volumeMounts"] = [{"name": n, "mountPath": p} for n, p in mounts.items()]
    return container


def _workload(plan: DeploymentPlan, svc: Service, namespace: str) -> dict[str, JSONValue]:
    pod: dict[str, JSONValue] = {"containers": [_container(plan, svc)]}
    if svc.shared:  # one ReadWriteMany claim per shared volume, mounted by every ctloop pod
        pod["volumes"] = [{"name": n, "persistentVolumeClaim": {"claimName": _claim(plan, n)}}
                          for n in svc.shared]
        pod["securityContext"] = {"fsGroup": 10001}  # the image's ctloop user can write
    meta: dict[str, JSONValue] = {"name": svc.name, "namespace": namespace,
                            "labels": _labels(svc.name)}
    if svc.pending:
        meta["annotations"] = {"ctloop.dev/pending-command": "true"}
    spec: dict[str, JSONValue] = {
        "replicas": svc.replicas,
        "selector": {"matchLabels": _labels(svc.name)},
        "template": {"metadata": {"labels": _labels(svc.name)}, "spec": pod},
    }
    if svc.oneshot:  # runs to completion; retried while the database starts
        pod["restartPolicy"] = "OnFailure"
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                "spec": {"backoffLimit": 20, "template": {
                    "metadata": {"labels": _labels(svc.name)}, "spec": pod}}}
    kind = "Deployment"
    if svc.volumes:  # only the bundled stores keep state on Kubernetes
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


def _claim(plan: DeploymentPlan, volume: str) -> str:
    return f"{plan.name}-{volume}"


def _shared_claims(plan: DeploymentPlan, namespace: str) -> list[dict[str, JSONValue]]:
    names = sorted({n for svc in plan.services for n in svc.shared})
    return [{
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": _claim(plan, n), "namespace": namespace,
                     "labels": dict(_PART_OF)},
        "spec": {"accessModes": ["ReadWriteMany"],
                 "resources": {"requests": {"storage": "10Gi"}}},
    } for n in names]


def _service(plan: DeploymentPlan, svc: Service, namespace: str) -> dict[str, JSONValue]:
    spec: dict[str, JSONValue] = {
        "selector": _labels(svc.name),
        "ports": [{"name": f"p{p}", "port": p, "targetPort": p} for p in svc.ports],
    }
    if svc.published:
        spec["type"] = "LoadBalancer"
        spec["ports"] = [{"name": "http", "port": plan.port, "targetPort": svc.ports[0]}]
        if plan.host not in ("0.0.0.0", "127.0.0.1", ""):
            spec["loadBalancerIP"] = plan.host
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": namespace, "labels": _labels(svc.name)},
        "spec": spec,
    }


def render_kubernetes(plan: DeploymentPlan, namespace: str = "ctloop"
                      ) -> list[dict[str, JSONValue]]:
    """The manifests, in the order ``kubectl apply -f`` should create them."""
    docs: list[dict[str, JSONValue]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG, "namespace": namespace, "labels": dict(_PART_OF)},
            "data": dict(plan.settings_env),
        },
    ]
    docs.extend(_shared_claims(plan, namespace))
    for svc in plan.services:
        docs.append(_workload(plan, svc, namespace))
        if svc.ports:
            docs.append(_service(plan, svc, namespace))
    return docs
