"""The official Python Kubernetes client (kubernetes==37.x) against `wavelift sim serve`.

Usage: python_list_nodes.py KUBECONFIG

Loads the kubeconfig the sim wrote, creates one object of each kind the sim serves but does
not seed, then lists and reads every built-in kind. The client validates every answer
against its models (generated from the Kubernetes OpenAPI spec: required fields, strict
types, RFC 3339 times), so an incomplete object raises. Any exception fails the run (exit
status 1, traceback on stderr). tests/sim/fidelity.rs runs it; tools/install-test-clients
installs the client.
"""

import sys
from datetime import datetime, timezone

from kubernetes import client, config
from kubernetes.client.rest import ApiException

NS = "py-client"


def micro_now():
    # Python's isoformat() drops a zero fraction, and the API server's MicroTime wants
    # exactly six digits; a real server rejects such a time as well.
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond or 1)


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    storage = client.StorageV1Api()
    coordination = client.CoordinationV1Api()
    authorization = client.AuthorizationV1Api()

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings"), data={"wave": "1"}
        ),
    )
    core.create_namespaced_secret(
        NS,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="creds"), string_data={"user": "admin"}
        ),
    )
    core.create_namespaced_persistent_volume_claim(
        NS,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="data"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                storage_class_name="sim-standard",
                resources=client.V1VolumeResourceRequirements(
                    requests={"storage": "1Gi"}
                ),
            ),
        ),
    )
    core.create_namespaced_pod(
        NS,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="probe"),
            spec=client.V1PodSpec(
                containers=[
                    client.V1Container(
                        name="probe",
                        image="registry.example/probe:1.0",
                        ports=[client.V1ContainerPort(container_port=8080)],
                    )
                ]
            ),
        ),
    )
    core.create_namespaced_event(
        NS,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="probe.1"),
            involved_object=client.V1ObjectReference(
                api_version="v1", kind="Pod", namespace=NS, name="probe"
            ),
            reason="Probed",
            message="probe answered",
            type="Normal",
            count=1,
            event_time=micro_now(),
            reporting_component="wavelift",
            reporting_instance="wavelift-1",
        ),
    )
    lease = coordination.create_namespaced_lease(
        NS,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="plan-quickstart"),
            spec=client.V1LeaseSpec(
                holder_identity="wavelift-a",
                lease_duration_seconds=15,
                acquire_time=micro_now(),
                renew_time=micro_now(),
                lease_transitions=0,
            ),
        ),
    )

    # Every built-in kind, listed across namespaces (the models validate each item).
    listings = [
        ("nodes", core.list_node()),
        ("namespaces", core.list_namespace()),
        ("persistentvolumeclaims", core.list_persistent_volume_claim_for_all_namespaces()),
        ("storageclasses", storage.list_storage_class()),
        ("configmaps", core.list_config_map_for_all_namespaces()),
        ("leases", coordination.list_lease_for_all_namespaces()),
        ("pods", core.list_pod_for_all_namespaces()),
        ("events", core.list_event_for_all_namespaces()),
        ("secrets", core.list_secret_for_all_namespaces()),
        ("services", core.list_service_for_all_namespaces()),
    ]
    for name, listing in listings:
        print(f"{name} {len(listing.items)}")
        if name != "services" and not listing.items:
            raise SystemExit(f"no {name} listed")

    node = core.read_node("sim-node-1")
    info = node.status.node_info
    print(f"node {node.metadata.name} kubelet={info.kubelet_version} machine={info.machine_id}")
    for c in node.status.conditions:
        if c.last_heartbeat_time is None or c.last_transition_time is None:
            raise SystemExit(f"node condition {c.type} has no times")
    core.read_namespaced_config_map("settings", NS)
    core.read_namespaced_secret("creds", NS)
    core.read_namespaced_persistent_volume_claim("data", NS)
    pod = core.read_namespaced_pod("probe", NS)
    print(f"pod {pod.metadata.name} phase={pod.status.phase} qos={pod.status.qos_class}")
    core.read_namespaced_event("probe.1", NS)
    storage.read_storage_class("sim-standard")

    review = authorization.create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb="create",
                    group="kubevirt.io",
                    resource="virtualmachines",
                    namespace=NS,
                )
            )
        )
    )
    print(f"selfsubjectaccessreview allowed={review.status.allowed}")

    # Renew carrying the resourceVersion read; a second renew from the same (now stale)
    # read must be refused with 409 Conflict.
    current = coordination.read_namespaced_lease("plan-quickstart", NS)
    current.spec.renew_time = micro_now()
    renewed = coordination.replace_namespaced_lease("plan-quickstart", NS, current)
    if renewed.metadata.resource_version == lease.metadata.resource_version:
        raise SystemExit("a renewal did not change the resourceVersion")
    try:
        coordination.replace_namespaced_lease("plan-quickstart", NS, current)
    except ApiException as e:
        if e.status != 409:
            raise
        print(f"lease conflict {e.status}")
    else:
        raise SystemExit("a stale lease update was accepted")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
