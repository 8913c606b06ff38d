"""The training pipeline of one model as an Argo WorkflowTemplate: validate -> train -> gate -> register -> rollout.

Each step is a container template running `python -m steps.<name>` with the command line of docs/steps.md;
every path argument is an Argo path variable, so the pod and the local runner (`mlops run`) run the same
command line. Names of the cluster-side ConfigMaps, Secret and ServiceAccount: see `workflows._common`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hera.workflows import (
    DAG,
    Artifact,
    ConfigMapEnv,
    Container,
    Env,
    Parameter,
    Resource,
    S3Artifact,
    SecretEnv,
    WorkflowTemplate,
)
from hera.workflows import models as m

from steps._core.policy import Policy
from workflows import _common

# The step exit code that means "transient: try again" (docs/steps.md); the only one retried.
TRANSIENT_EXIT_CODE = 3
RETRY_EXPRESSION = f"asInt(lastRetry.exitCode) == {TRANSIENT_EXIT_CODE}"
WORKFLOW_DEADLINE_SECONDS = 4 * 3600
# Pods that failed stay for `kubectl logs`; finished Workflows are kept a day (a week when they failed).
TTL_AFTER_SUCCESS_SECONDS = 86400
TTL_AFTER_FAILURE_SECONDS = 7 * 86400
ROLLOUT_SERVICE_ACCOUNT = "mlops-rollout"  # manifests/base: get/patch rollouts, list analysisruns
RUN_LABELS_SERVICE_ACCOUNT = "mlops-run-labels"  # manifests/base: patch workflows (the exit handler only)
# Every artifact is stored as it is, not as a .tgz: Argo's UI can show a report only when it is stored so, and the
# validated data, the holdout (Parquet) and the bundle (a zipped skops file, JSON) do not compress: gzip saved ~5% of
# their bytes for ~1.4 s of CPU inside the tasks at 1M rows. Argo's S3 driver stores a folder file by file.
UNARCHIVED = m.ArchiveStrategy(none=m.NoneStrategy())
# The value an output shows when its step did not write it (or did not run).
NO_VERSION = "none"
UNKNOWN = "unknown"

# What a run says about itself in the Argo UI and `argo list -l` (issue 17). Argo substitutes the global variables
# of a Workflow's spec, workflowMetadata included, when the Workflow starts (operator.go: setExecWorkflow,
# substituteGlobalVariables, then updateWorkflowMetadata), for a Workflow submitted from this template by
# `argo submit --from`, `mlops submit` or the drift Sensor (its spec is the template's merged with the submitted
# one). `{{=...}}` is an expr-lang expression over the same variables; a hyphenated parameter needs the index form.
_PARAM = "workflow.parameters"
_REASON = f"{_PARAM}.reason"
_COMMIT = f"{_PARAM}['git-commit']"
_DRIFTED = f"join(fromJSON({_PARAM}['drifted-features']), ', ')"  # the Sensor passes the webhook's JSON list
# labelsFrom: an expression (no braces) whose value must be a valid label value, or Argo errors the Workflow:
# free-text reasons map to `manual`.
TRIGGER_EXPRESSION = (f"{_REASON} == '{_common.DRIFT_REASON}' ? 'drift' : "
                      f"{_REASON} == '{_common.GIT_PUSH_REASON}' ? '{_common.GIT_PUSH_REASON}' : 'manual'")
_TRIGGER_TEXT = (f"{_REASON} == '{_common.DRIFT_REASON}' ? 'retrain on drift in ' + {_DRIFTED} : "
                 f"{_REASON} == '{_common.GIT_PUSH_REASON}' ? 'git push ' + {_COMMIT} : "
                 f"{_REASON} == '{_common.MANUAL_REASON}' ? 'manual training' : 'manual training: ' + {_REASON}")
_TRIGGER_LINE = (f"{_REASON} == '{_common.DRIFT_REASON}' ? 'Trigger: **drift**, the features ' + {_DRIFTED} + "
                 f"' drifted' : {_REASON} == '{_common.GIT_PUSH_REASON}' ? 'Trigger: **git push** of commit ' + "
                 f"{_COMMIT} : 'Trigger: **manual** (reason: ' + {_REASON} + ')'")
_BASELINE = (f"{_PARAM}['baseline-version'] == '' ? 'the production version' : "
             f"'version ' + {_PARAM}['baseline-version']")
# The exit handler reads the steps' global outputs (`globalName`): one a step never wrote is missing from
# `workflow.outputs.parameters` (all of them when validate failed), and a simple tag to it would stay as the literal
# `{{...}}` (an invalid label value). In an expression a missing key is nil, `?.` stops at a nil and `??` replaces
# it, so these always resolve. Argo leaves a template's own tags until it runs it, when workflow.status is set.
_OUTPUTS = "workflow.outputs?.parameters?"
VERSION_EXPRESSION = f"{_OUTPUTS}.version ?? '{NO_VERSION}'"
RESULT_EXPRESSION = (
    f"workflow.status == 'Succeeded' || ({_OUTPUTS}.outcome ?? '') == 'promoted' ? 'promoted' : "
    f"({_OUTPUTS}.passed ?? '') == 'false' || ({_OUTPUTS}.outcome ?? '') == 'aborted' ? 'rejected' : "
    f"({_OUTPUTS}.version ?? '{NO_VERSION}') != '{NO_VERSION}' ? 'registered' : 'failed'"
)
# Shown on the exit node, where a rejected run (Failed: Argo gives its DAG no outputs) still names its failed gates.
FAILED_GATES_EXPRESSION = f"{_OUTPUTS}.['failed-gates'] ?? '{UNKNOWN}'"
RESULT_TEMPLATE = "label-result"


@dataclass(frozen=True)
class StepSpec:
    """What differs between the four step containers: size, deadline and which storage they touch."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    deadline_seconds: int
    registry: bool  # reads or writes the model registry (MLOPS_REGISTRY)
    s3: bool  # may talk to object storage (S3 endpoint and credentials)
    service_account: str | None = None  # its own least-privilege identity (manifests/base), else the workflow's
    pushgateway: bool = False  # pushes its outcome to the Pushgateway that mlops-config names (optional key)


STEPS: dict[str, StepSpec] = {
    "validate": StepSpec("250m", "1Gi", "1", "2Gi", 1800, registry=False, s3=True),
    "train": StepSpec("1", "2Gi", "2", "4Gi", 3600, registry=False, s3=False),
    "gate": StepSpec("500m", "1Gi", "1", "3Gi", 1800, registry=True, s3=True),
    "register": StepSpec("100m", "256Mi", "500m", "512Mi", 600, registry=True, s3=True, pushgateway=True),
    # Waits for the canary (the policy's pauses and analyses: 3 h for the seed's schedule), so its deadline is
    # the workflow's; only it may patch Rollouts.
    "rollout": StepSpec("100m", "256Mi", "500m", "1Gi", WORKFLOW_DEADLINE_SECONDS, registry=True, s3=True,
                        service_account=ROLLOUT_SERVICE_ACCOUNT),
}


def template_name(policy: Policy) -> str:
    return f"{policy.model_name}-training"


def workflow_parameters(policy: Policy) -> list[Parameter]:
    """The parameters a submit (`-p name=value`, a Sensor, `mlops run`) may set, with their defaults."""
    model = policy.model_name
    return [
        Parameter(name="dataset", value=policy.data.source,
                  description="Dataset URI (CSV or Parquet; a path, file:// or s3://)"),
        Parameter(name="model", value=model, description="Model name in the registry"),
        Parameter(name="policy", value=f"{_common.POLICY_MOUNT}/{model}.yaml", description="Policy file"),
        Parameter(name="git-commit", value="unknown", description="Commit of the code and policy that trains"),
        Parameter(name="reason", value=_common.MANUAL_REASON,
                  description=f"Why this training runs: {_common.MANUAL_REASON} (or any text), "
                              f"{_common.GIT_PUSH_REASON} (CI), {_common.DRIFT_REASON} (the drift Sensor)"),
        Parameter(name="drifted-features", value="[]", description="JSON list of the features that drifted"),
        Parameter(name="baseline-version", value="",
                  description="Registry version the gate compares against (empty: the production version)"),
        Parameter(name="idempotency-key", value="", description="Set by the drift Sensor; names the Workflow"),
        Parameter(name="image-tag", value=_common.package_version(), description="Tag of the step image"),
        Parameter(name="rollout-target", value="kubernetes", enum=["kubernetes", "local"],
                  description="Where the rollout task deploys: the model's Argo Rollout, or `mlops deploy` (local)"),
        Parameter(name="rollout-time-scale", value="1",
                  description="local target: multiply the canary's pauses and analysis intervals by this"),
    ]


def build_training(policy: Policy, image: str = _common.DEFAULT_IMAGE) -> WorkflowTemplate:
    """The `<model>-training` WorkflowTemplate for one policy. Submits nothing."""
    model = policy.model_name
    labels = _common.labels(model, "training")
    with WorkflowTemplate(
        name=template_name(policy),
        labels=labels,
        annotations={
            _common.TITLE_ANNOTATION: f"**{model}** · training",
            "workflows.argoproj.io/description": f"Validate, train, gate, register and roll out {model} "
            f"(policy {policy.path.name}).",
            **_common.provenance(policy.path.name, policy.sha256, "workflows/training.py:build_training"),
        },
        entrypoint="training",
        arguments=workflow_parameters(policy),
        service_account_name=_common.SERVICE_ACCOUNT,
        artifact_repository_ref=m.ArtifactRepositoryRef(
            config_map=_common.ARTIFACT_REPOSITORIES, key=_common.ARTIFACT_REPOSITORY_KEY
        ),
        active_deadline_seconds=WORKFLOW_DEADLINE_SECONDS,
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        ttl_strategy=m.TTLStrategy(
            seconds_after_success=TTL_AFTER_SUCCESS_SECONDS, seconds_after_failure=TTL_AFTER_FAILURE_SECONDS
        ),
        security_context=m.PodSecurityContext.model_validate(_common.pod_security_context()),
        workflow_metadata=run_metadata(policy, labels),
        pod_metadata=m.Metadata(labels=labels),
        on_exit=RESULT_TEMPLATE,
        volumes=[
            m.Volume(name="policy", config_map=m.ConfigMapVolumeSource(name=_common.policy_configmap_name(model))),
            m.Volume(name="tmp", empty_dir=m.EmptyDirVolumeSource()),
        ],
    ) as template:
        validate = _step(
            "validate",
            image,
            inputs=[Parameter(name="dataset"), Parameter(name="policy")],
            outputs=[
                Artifact(name="validated", path="/tmp/validated", archive=UNARCHIVED),
                Artifact(name="validation-report", path="/tmp/validation.json", archive=UNARCHIVED),
            ],
            args=[
                "--dataset", "{{inputs.parameters.dataset}}",
                "--policy", "{{inputs.parameters.policy}}",
                "--out", "{{outputs.artifacts.validated.path}}",
                "--report", "{{outputs.artifacts.validation-report.path}}",
            ],
        )
        train = _step(
            "train",
            image,
            inputs=[
                Artifact(name="data", path="/tmp/inputs/data"),
                Parameter(name="policy"),
                Parameter(name="git-commit"),
                Parameter(name="reason"),
                Parameter(name="drifted-features"),
            ],
            outputs=[
                Artifact(name="bundle", path="/tmp/bundle", archive=UNARCHIVED),
                Artifact(name="holdout", path="/tmp/holdout.parquet", archive=UNARCHIVED),
                Parameter(name="fingerprint", value_from=m.ValueFrom(path="/tmp/fingerprint")),
            ],
            args=[
                "--data", "{{inputs.artifacts.data.path}}",
                "--policy", "{{inputs.parameters.policy}}",
                "--bundle", "{{outputs.artifacts.bundle.path}}",
                "--holdout", "{{outputs.artifacts.holdout.path}}",
                "--git-commit", "{{inputs.parameters.git-commit}}",
                "--reason", "{{inputs.parameters.reason}}",
                "--drifted-features", "{{inputs.parameters.drifted-features}}",
                "--fingerprint-out", "{{outputs.parameters.fingerprint.path}}",
            ],
        )
        gate = _step(
            "gate",
            image,
            inputs=[
                Artifact(name="bundle", path="/tmp/inputs/bundle"),
                Artifact(name="holdout", path="/tmp/inputs/holdout.parquet"),
                Parameter(name="policy"),
                Parameter(name="baseline-version"),
            ],
            outputs=[
                report_folder("gate-report", "/tmp/gate-report"),
                Parameter(name="passed", value_from=m.ValueFrom(path="/tmp/passed", default=UNKNOWN),
                          global_name="passed"),
                Parameter(name="failed-gates", value_from=m.ValueFrom(path="/tmp/failed-gates", default=UNKNOWN),
                          global_name="failed-gates"),
            ],
            args=[
                "--bundle", "{{inputs.artifacts.bundle.path}}",
                "--holdout", "{{inputs.artifacts.holdout.path}}",
                "--policy", "{{inputs.parameters.policy}}",
                "--report-dir", "{{outputs.artifacts.gate-report.path}}",
                "--passed-out", "{{outputs.parameters.passed.path}}",
                "--failed-out", "{{outputs.parameters.failed-gates.path}}",
                "--baseline-version", "{{inputs.parameters.baseline-version}}",
            ],
        )
        register = _step(
            "register",
            image,
            inputs=[
                Artifact(name="bundle", path="/tmp/inputs/bundle"),
                Artifact(name="gate-report", path="/tmp/inputs/gate-report"),
                Parameter(name="model"),
                Parameter(name="git-commit"),
                Parameter(name="reason"),
            ],
            outputs=[
                # Written for a rejected candidate too (register then exits 1): the run's version label reads it.
                Parameter(name="version", value_from=m.ValueFrom(path="/tmp/version", default=NO_VERSION),
                          global_name="version"),
                # The registry page as it stands after this registration; best effort, so optional.
                report_folder("registry-report", "/tmp/registry-report", optional=True),
            ],
            args=[
                "--bundle", "{{inputs.artifacts.bundle.path}}",
                "--gate-report", "{{inputs.artifacts.gate-report.path}}/gate.json",
                "--model", "{{inputs.parameters.model}}",
                "--git-commit", "{{inputs.parameters.git-commit}}",
                "--reason", "{{inputs.parameters.reason}}",
                "--version-out", "{{outputs.parameters.version.path}}",
                "--registry-report-out", "{{outputs.artifacts.registry-report.path}}",
            ],
        )

        rollout = _step(
            "rollout",
            image,
            inputs=[
                Parameter(name="model"),
                Parameter(name="version"),
                Parameter(name="policy"),
                Parameter(name="rollout-target"),
                Parameter(name="rollout-time-scale"),
            ],
            outputs=[Parameter(name="outcome", value_from=m.ValueFrom(path="/tmp/outcome", default=UNKNOWN),
                               global_name="outcome")],
            args=[
                "--model", "{{inputs.parameters.model}}",
                "--version", "{{inputs.parameters.version}}",
                "--policy", "{{inputs.parameters.policy}}",
                "--target", "{{inputs.parameters.rollout-target}}",
                "--time-scale", "{{inputs.parameters.rollout-time-scale}}",
                "--outcome-out", "{{outputs.parameters.outcome.path}}",
            ],
        )

        with DAG(name="training", outputs=dag_outputs()):
            validate(name="validate", arguments=_params("dataset", "policy"))
            train(
                name="train",
                depends="validate",
                arguments=[
                    Artifact(name="data", from_="{{tasks.validate.outputs.artifacts.validated}}"),
                    *_params("policy", "git-commit", "reason", "drifted-features"),
                ],
            )
            gate(
                name="gate",
                depends="train",
                arguments=[
                    Artifact(name="bundle", from_="{{tasks.train.outputs.artifacts.bundle}}"),
                    Artifact(name="holdout", from_="{{tasks.train.outputs.artifacts.holdout}}"),
                    *_params("policy", "baseline-version"),
                ],
            )
            # After the gate whatever its verdict: a rejected candidate is recorded too (register then exits 1,
            # so the Workflow ends Failed). Only a gate that could not evaluate (non-zero exit) stops it.
            register(
                name="register",
                depends="train && gate",
                arguments=[
                    Artifact(name="bundle", from_="{{tasks.train.outputs.artifacts.bundle}}"),
                    Artifact(name="gate-report", from_="{{tasks.gate.outputs.artifacts.gate-report}}"),
                    *_params("model", "git-commit", "reason"),
                ],
            )
            # Only a version that passed the gates and was registered is deployed (a rejected one fails register).
            rollout(
                name="rollout",
                depends="register.Succeeded",
                when="{{tasks.gate.outputs.parameters.passed}} == true",
                arguments=[
                    Parameter(name="version", value="{{tasks.register.outputs.parameters.version}}"),
                    *_params("model", "policy", "rollout-target", "rollout-time-scale"),
                ],
            )
        label_result = result_labels_template()
    # Templates added later go last, so the existing ones (and the paths that lint messages name) keep their index.
    template.templates = [t for t in template.templates if t not in (rollout, label_result)] + [rollout, label_result]
    return template


def result_labels_template() -> Resource:
    """The exit handler: once the DAG has ended, however it ended, label the run with its registered version and
    its result, so `argo list -l argo-mlops.io/result=rejected` finds it. Argo has no other way to set a label
    from outputs: a merge patch of the Workflow itself, as its own ServiceAccount, the only one that may patch
    Workflows (manifests/base/mlops-run-labels-role.yaml). Its inputs, shown on the exit node, are what it set."""
    manifest = "\n".join([
        "apiVersion: argoproj.io/v1alpha1",
        "kind: Workflow",
        "metadata:",
        "  name: \"{{workflow.name}}\"",
        "  labels:",
        f"    {_common.VERSION_LABEL}: \"{{{{inputs.parameters.version}}}}\"",
        f"    {_common.RESULT_LABEL}: \"{{{{inputs.parameters.result}}}}\"",
        "",
    ])
    return Resource(
        name=RESULT_TEMPLATE,
        inputs=[
            Parameter(name="version", value=f"{{{{={VERSION_EXPRESSION}}}}}", description="the registered version"),
            Parameter(name="result", value=f"{{{{={RESULT_EXPRESSION}}}}}",
                      description="promoted, rejected (by the gates or the canary), registered or failed"),
            Parameter(name="failed-gates", value=f"{{{{={FAILED_GATES_EXPRESSION}}}}}",
                      description="the gates the candidate failed (none when it passed; unknown when not gated)"),
        ],
        action="patch",
        merge_strategy="merge",
        manifest=manifest,
        service_account_name=RUN_LABELS_SERVICE_ACCOUNT,
    )


def report_folder(name: str, path: str, optional: bool = False) -> S3Artifact:
    """A report folder as the Argo UI shows it: stored as it is, under a key that ends in `/`. Through the artifact
    repository's keyFormat a folder's key is `<keyFormat>/<folder>` (no slash: the UI then neither draws nor opens
    it), so the key is given here, key-only: the bucket and credentials still come from the artifact repository
    (Argo's docs/key-only-artifacts.md), the key follows its keyFormat
    (manifests/base/artifact-repositories-configmap.yaml)."""
    return S3Artifact(name=name, path=path, archive=UNARCHIVED, optional=optional or None,
                      key=f"{_common.REPORT_KEY_PREFIX}/{name}/")


def run_metadata(policy: Policy, labels: dict[str, str]) -> m.WorkflowMetadata:
    """The labels and annotations every run of the template gets: its title and description (markdown) from its
    parameters, and the `argo-mlops.io/trigger` label (manual, drift or git-push) from its `reason`."""
    return m.WorkflowMetadata(
        labels=labels,
        labels_from={_common.TRIGGER_LABEL: m.LabelValueFrom(expression=TRIGGER_EXPRESSION)},
        annotations={
            _common.TITLE_ANNOTATION: f"**{{{{{_PARAM}.model}}}}** · {{{{={_TRIGGER_TEXT}}}}}",
            _common.DESCRIPTION_ANNOTATION: (
                f"{{{{={_TRIGGER_LINE}}}}}\n\n"
                f"Baseline: {{{{={_BASELINE}}}}} · commit `{{{{{_PARAM}.git-commit}}}}` · "
                f"data `{{{{{_PARAM}.dataset}}}}`\n\n"
                f"Validate, train, gate, register and roll out {policy.model_name} (policy {policy.path.name})."
            ),
        },
    )


def dag_outputs() -> list[Parameter]:
    """The entrypoint's outputs, the run's outputs in the Argo UI (the root node's panel). Argo sets them only
    when the DAG succeeds (dag.go returns before resolving them for a Failed DAG); each has a default for a task
    that was skipped or wrote nothing. A failed run's values are in the exit handler's inputs and labels."""
    def output(name: str, task: str, default: str, what: str) -> Parameter:
        return Parameter(name=name, description=what, value_from=m.ValueFrom(
            parameter=f"{{{{tasks.{task}.outputs.parameters.{name}}}}}", default=default))

    return [
        output("version", "register", NO_VERSION, "the registered version"),
        output("passed", "gate", UNKNOWN, "the gate verdict: true or false"),
        output("failed-gates", "gate", UNKNOWN, "the gates the candidate failed, or none"),
        output("outcome", "rollout", UNKNOWN, "the rollout's outcome: promoted, aborted or timed-out"),
    ]


def build_policy_configmap(policy: Policy) -> dict[str, Any]:
    """The ConfigMap `mlops-policy-<model>` the steps read the policy from (mounted at /etc/mlops/policy)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": _common.policy_configmap_name(policy.model_name),
            "labels": _common.labels(policy.model_name, "policy"),
            "annotations": _common.provenance(
                policy.path.name, policy.sha256, "workflows/training.py:build_policy_configmap"
            ),
        },
        "data": {f"{policy.model_name}.yaml": policy.path.read_text(encoding="utf-8")},
    }


def _params(*names: str) -> list[Parameter]:
    return [Parameter(name=name, value=f"{{{{workflow.parameters.{name}}}}}") for name in names]


def _step(name: str, image: str, inputs: list[Any], outputs: list[Any], args: list[str]) -> Container:
    spec = STEPS[name]
    return Container(
        name=name,
        image=f"{image}:{{{{workflow.parameters.image-tag}}}}",
        image_pull_policy="IfNotPresent",
        command=["python", "-m", f"steps.{name}"],
        args=args,
        inputs=inputs,
        outputs=outputs,
        env=_env(spec),
        resources=m.ResourceRequirements(
            requests={"cpu": m.Quantity(spec.cpu_request), "memory": m.Quantity(spec.memory_request)},
            limits={"cpu": m.Quantity(spec.cpu_limit), "memory": m.Quantity(spec.memory_limit)},
        ),
        security_context=m.SecurityContext.model_validate(_common.container_security_context()),
        service_account_name=spec.service_account,
        volume_mounts=[
            m.VolumeMount(name="policy", mount_path=_common.POLICY_MOUNT, read_only=True),
            m.VolumeMount(name="tmp", mount_path="/tmp"),
        ],
        active_deadline_seconds=str(spec.deadline_seconds),
        retry_strategy=m.RetryStrategy(
            limit=m.IntOrString("3"),
            expression=RETRY_EXPRESSION,
            backoff=m.Backoff(duration="15s", factor=m.IntOrString("2"), max_duration="5m"),
        ),
    )


def _env(spec: StepSpec) -> list[Any]:
    env: list[Any] = [Env(name="MLOPS_ACTOR", value="argo:{{workflow.name}}")]
    if spec.registry:
        env.append(ConfigMapEnv(name="MLOPS_REGISTRY", config_map_name=_common.CONFIG_MAP, config_map_key="registry"))
    if spec.pushgateway:  # the training outcome for dashboards and alerts, when mlops-config names a Pushgateway
        env.append(ConfigMapEnv(name="MLOPS_PUSHGATEWAY_URL", config_map_name=_common.CONFIG_MAP,
                                config_map_key="pushgateway-url", optional=True))
    if spec.s3:
        env += [
            ConfigMapEnv(name="AWS_ENDPOINT_URL", config_map_name=_common.CONFIG_MAP,
                         config_map_key="aws-endpoint-url", optional=True),
            SecretEnv(name="AWS_ACCESS_KEY_ID", secret_name=_common.S3_SECRET,
                      secret_key="aws-access-key-id", optional=True),
            SecretEnv(name="AWS_SECRET_ACCESS_KEY", secret_name=_common.S3_SECRET,
                      secret_key="aws-secret-access-key", optional=True),
        ]
    return env
