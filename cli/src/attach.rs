//! `kubectl bpc attach` and `kubectl bpc detach`: the live path.
//!
//! Each workload is read, planned with [`crate::sidecar::inject`] /
//! [`crate::sidecar::uninject`] (the same functions as the offline path),
//! checked, and written with a strategic merge patch that names only the
//! sidecar container and the status annotation and carries the
//! resourceVersion read, so a concurrent change is a 409 and the whole
//! read-plan-write is retried. One workload failing does not stop the others.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, ObjectMeta, TypeMeta};
use serde_json::Value;

use crate::capabilities::{CapabilitiesArg, CapabilityPlanner};
use crate::kube_context::{FIELD_MANAGER, Kube};
use crate::output::{self, ObjectFormat};
use crate::sidecar::{self, Change, Sidecar, SidecarForm, SidecarFormArg, SidecarOptions};
use crate::workload::{KindApi, WorkloadId, WorkloadKind, WorkloadRef};
use crate::{EXIT_WORKLOAD_FAILED, Error, preflight};

/// Attempts of a read-plan-write cycle when the object changed under us.
const CONFLICT_ATTEMPTS: usize = 5;

/// `--dry-run` modes, as kubectl's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRun {
    /// Write for real.
    #[default]
    None,
    /// Nothing is sent that changes anything; the result is printed.
    Client,
    /// The write is sent with dryRun=All: validated and admitted, not persisted.
    Server,
}

/// Flags of commands that change workloads.
#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    /// Only show what would change: client (print the result) or server (sent with dryRun=All).
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// Print the changed objects in this format (default for --dry-run=client: yaml).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ObjectFormat>,
    /// Print a unified diff of each workload instead of the object (with --dry-run).
    #[arg(long)]
    pub diff: bool,
    /// Wait for the rollouts to finish, all workloads together (a workload fails early when its
    /// pods are refused, a new pod is unschedulable, or its agent crash-loops).
    #[arg(long)]
    pub wait: bool,
    /// With --wait, how long the whole command may take.
    #[arg(long, value_parser = crate::duration::parse_duration, default_value = "5m")]
    pub timeout: Duration,
}

/// The workloads a command acts on: names, or a label selector.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// Workloads: NAME (a Deployment), deploy/NAME, sts/NAME, ds/NAME or cronjob/NAME.
    #[arg(value_name = "WORKLOAD")]
    pub workloads: Vec<String>,
    /// Every Deployment, StatefulSet, DaemonSet and CronJob matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// `kubectl bpc attach`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  # Mirror the checkout Deployment's traffic to a collector
  kubectl bpc attach checkout -n shop --collector 10.0.0.5

  # Only HTTPS, two collectors, capped at 20k packets/s per pod, wait for the rollout
  kubectl bpc attach deploy/checkout --collector 10.0.0.5 --collector probe.obs.svc \\
      --filter 'tcp port 443' --max-pps 20000 --wait

  # Preview every workload labelled tier=web, as a diff
  kubectl bpc attach -l tier=web --collector 10.0.0.5 --dry-run --diff")]
pub struct AttachArgs {
    /// Which workloads.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// The sidecar's options.
    #[command(flatten)]
    pub options: SidecarOptions,
    /// How the agent gets CAP_NET_RAW.
    #[arg(long, value_enum, default_value = "auto")]
    pub capabilities: CapabilitiesArg,
    /// How the agent joins the pod: a native sidecar (first init container, restartPolicy
    /// Always: capture from the pod's first packet to its last; Kubernetes 1.29+), a plain
    /// container, or auto (native where the API server supports it).
    #[arg(long, value_enum, default_value = "auto")]
    pub sidecar: SidecarFormArg,
    /// Attach even to pods with hostNetwork: true (captures the whole node's traffic).
    #[arg(long)]
    pub allow_host_network: bool,
    /// Dry run, output, wait.
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `kubectl bpc detach`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  # Remove the sidecar from one Deployment
  kubectl bpc detach checkout -n shop

  # Remove it from every workload of the namespace it was attached to, showing the diff first
  kubectl bpc detach --all -n shop --dry-run --diff
  kubectl bpc detach --all -n shop")]
pub struct DetachArgs {
    /// Which workloads.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Every workload with the sidecar attached (in the namespace, or with -A everywhere).
    #[arg(long)]
    pub all: bool,
    /// Dry run, output, wait.
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// What happened to one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The workload.
    pub workload: WorkloadId,
    /// What was done.
    pub action: Change,
    /// The object after the change (for -o).
    pub object: Value,
    /// The object before it (for --diff).
    pub before: Value,
}

/// The HTTP verb and resource named when the API server says 403.
fn api_error(e: kube::Error, verb: &str, id: &WorkloadId) -> Error {
    let ns = &id.namespace;
    let plural = format!("{}s.{}", id.kind.lower(), id.kind.resource().rsplit('.').next().unwrap_or("apps"));
    match e {
        kube::Error::Api(s) if s.code == 404 => Error::Workload(format!(
            "{id} not found in namespace {ns}: check the name with kubectl get {plural} -n {ns}"
        )),
        kube::Error::Api(s) if s.code == 403 => Error::Workload(format!(
            "{id} in namespace {ns}: forbidden: {}; kubectl-bpc needs the RBAC verb '{verb}' on {plural} in \
             namespace {ns} (check with: kubectl auth can-i {verb} {plural} -n {ns})",
            s.message
        )),
        kube::Error::Api(s) if s.code == 409 => Error::Workload(format!(
            "{id} in namespace {ns} kept changing while it was being patched ({CONFLICT_ATTEMPTS} attempts): \
             try again when its controller is idle"
        )),
        kube::Error::Api(s) => {
            Error::Workload(format!("{id} in namespace {ns}: {verb} refused: {}", s.message))
        }
        other => Error::Workload(format!("{id} in namespace {ns}: {verb} failed: {other}")),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Checks the target arguments before anything is asked of the cluster.
pub fn check_targets(
    names: &[String],
    selector: Option<&str>,
    all: bool,
    all_namespaces: bool,
) -> Result<Vec<WorkloadRef>, Error> {
    let refs = names.iter().map(|n| WorkloadRef::parse(n)).collect::<Result<Vec<_>, _>>()?;
    if let Some(r) = refs.iter().find(|r| !r.kind_or_deployment().is_attachable()) {
        return Err(immutable_template(r));
    }
    if refs.is_empty() && selector.is_none() && !all {
        return Err(Error::Usage(
            "name at least one workload (NAME, deploy/NAME, sts/NAME, ds/NAME, cronjob/NAME) or use -l SELECTOR"
                .into(),
        ));
    }
    if !refs.is_empty() && (selector.is_some() || all) {
        return Err(Error::Usage("give workload names or a selector/--all, not both".into()));
    }
    if !refs.is_empty() && all_namespaces {
        return Err(Error::Usage("-A/--all-namespaces cannot be used with workload names: use -n NS".into()));
    }
    Ok(refs)
}

/// Why a Job or a Pod cannot be attached, and what to do instead.
fn immutable_template(r: &WorkloadRef) -> Error {
    let kind = r.kind_or_deployment();
    let instead = match kind {
        WorkloadKind::Job => format!(
            "capture its running pods now (kubectl bpc capture job/{0}), attach the CronJob that creates it \
             (kubectl bpc attach cronjob/NAME) so that every future Job carries the sidecar, or put the sidecar \
             into the Job's manifest before it is created (kubectl bpc inject -f job.yaml)",
            r.name
        ),
        _ => format!(
            "capture it now (kubectl bpc capture pod/{0}), attach the workload that creates it, or put the \
             sidecar into the Pod's manifest before it is created (kubectl bpc inject -f pod.yaml)",
            r.name
        ),
    };
    Error::Usage(format!(
        "{}/{}: a {}'s pod template cannot be changed once it is created, so the sidecar cannot be added or \
         removed there; {instead}",
        kind.resource(),
        r.name,
        kind.as_str()
    ))
}

/// Finds the workloads named, or matched by a selector, or (`all`) every
/// attached one. Names are read one by one (so a missing one is its own
/// failure); a selector or `all` lists each kind.
pub async fn resolve(
    kube: &Kube,
    names: &[String],
    selector: Option<&str>,
    all: bool,
) -> Result<Vec<Result<(WorkloadId, DynamicObject), Error>>, Error> {
    let refs = check_targets(names, selector, all, kube.all_namespaces)?;
    let mut found = Vec::new();
    for r in refs {
        let kind = r.kind_or_deployment();
        let id = WorkloadId { namespace: kube.namespace.clone(), kind, name: r.name };
        let got = kind.api(&kube.client, &id.namespace).get(&id.name).await;
        found.push(got.map(|o| (id.clone(), o)).map_err(|e| api_error(e, "get", &id)));
    }
    if selector.is_some() || all {
        let lp = selector.map_or_else(ListParams::default, |s| ListParams::default().labels(s));
        for kind in WorkloadKind::ATTACHABLE {
            let api = match kube.scope() {
                Some(ns) => kind.api(&kube.client, ns),
                None => kind.api_all(&kube.client),
            };
            let list = api.list(&lp).await.map_err(|e| match e {
                kube::Error::Api(s) if s.code == 403 => Error::Config(format!(
                    "cannot list {}s: {}; kubectl-bpc needs the RBAC verb 'list' on them",
                    kind.resource(),
                    s.message
                )),
                kube::Error::Api(s) if s.code == 400 => Error::Usage(format!(
                    "invalid selector '{}': {}",
                    selector.unwrap_or_default(),
                    s.message
                )),
                other => Error::Kube(other),
            })?;
            for o in list.items {
                if all
                    && selector.is_none()
                    && template(kind, &o).and_then(sidecar::status_annotation).is_none()
                {
                    continue;
                }
                let id = WorkloadId {
                    namespace: o.metadata.namespace.clone().unwrap_or_else(|| kube.namespace.clone()),
                    kind,
                    name: o.metadata.name.clone().unwrap_or_default(),
                };
                found.push(Ok((id, o)));
            }
        }
    }
    Ok(found)
}

fn template(kind: WorkloadKind, o: &DynamicObject) -> Option<&Value> {
    o.data.pointer(kind.template_pointer())
}

fn object_value(kind: WorkloadKind, o: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    let ar = kind.api_resource();
    if v.get("apiVersion").is_none() {
        v["apiVersion"] = Value::String(ar.api_version);
        v["kind"] = Value::String(ar.kind);
    }
    v
}

fn with_template(kind: WorkloadKind, object: &Value, template: &Value) -> Value {
    let mut v = object.clone();
    if let Some(t) = v.pointer_mut(kind.template_pointer()) {
        *t = template.clone();
    }
    v
}

/// Server-side dry run of a Pod made from `template`: Pod Security and
/// other admission checks reject Pods, not workloads, so this is the only
/// way to learn before the rollout that the sidecar will be refused.
/// Returns the refusal message, or `None` when admitted (or when the user
/// may not create pods, which only skips the check).
pub async fn dry_run_pod(
    client: &kube::Client,
    id: &WorkloadId,
    template: &Value,
) -> Result<Option<String>, Error> {
    let ar = ApiResource::erase::<Pod>(&());
    let api = kube::Api::<DynamicObject>::namespaced_with(client.clone(), &id.namespace, &ar);
    let meta = template.get("metadata").cloned().unwrap_or(Value::Null);
    let pod = DynamicObject {
        types: Some(TypeMeta { api_version: "v1".into(), kind: "Pod".into() }),
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-bpc-preflight-", id.name)),
            namespace: Some(id.namespace.clone()),
            labels: serde_json::from_value(meta["labels"].clone()).unwrap_or_default(),
            annotations: serde_json::from_value(meta["annotations"].clone()).unwrap_or_default(),
            ..Default::default()
        },
        data: serde_json::json!({"spec": template.get("spec").cloned().unwrap_or(Value::Null)}),
    };
    let pp = PostParams { dry_run: true, field_manager: Some(FIELD_MANAGER.into()) };
    match api.create(&pp, &pod).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("cannot create resource") => {
            eprintln!(
                "note: {id}: no permission to dry-run pods in namespace {}; skipped the admission pre-flight",
                id.namespace
            );
            Ok(None)
        }
        Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => Ok(Some(s.message.clone())),
        Err(e) => Err(api_error(e, "create (dry run)", id)),
    }
}

/// What to do about an admission refusal of the pod with the sidecar, by the
/// policy that refused it (the message names it).
fn refusal_hint(refusal: &str) -> &'static str {
    if refusal.contains("exceeded quota") {
        "the sidecar's resources do not fit the namespace's ResourceQuota: lower --cpu-limit/--memory-limit or raise the quota"
    } else if refusal.contains("PodSecurity") {
        "see --capabilities, or ask for the namespace's policy to allow NET_RAW"
    } else {
        "the refusal above names the policy (admission webhook, LimitRange, ...) the sidecar must satisfy"
    }
}

fn patch_params(dry_run: DryRun) -> PatchParams {
    PatchParams {
        dry_run: dry_run == DryRun::Server,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Attaches (or updates, or leaves as is) the sidecar of one workload.
pub async fn attach_one(
    kube: &Kube,
    id: &WorkloadId,
    mut object: DynamicObject,
    args: &AttachArgs,
    form: SidecarForm,
    planner: &mut CapabilityPlanner,
) -> Result<Done, Error> {
    let api = id.kind.api(&kube.client, &id.namespace);
    let choice = planner.choose(&kube.client, &id.namespace).await?;
    let sidecar = Sidecar {
        workload: id.clone(),
        options: args.options.clone(),
        capabilities: choice.mode,
        allow_host_network: args.allow_host_network,
        form,
    };
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let before = object_value(id.kind, &object);
        let current = template(id.kind, &object).cloned().ok_or_else(|| {
            Error::Workload(format!(
                "{id} in namespace {} has no pod template ({})",
                id.namespace,
                id.kind.template_pointer()
            ))
        })?;
        let mut desired = current.clone();
        let injected = sidecar::inject(&mut desired, &sidecar).map_err(|e| Error::Workload(e.to_string()))?;
        let after = with_template(id.kind, &before, &desired);
        let action = Change::from(injected);
        if action == Change::Unchanged {
            return Ok(Done { workload: id.clone(), action, object: after, before });
        }
        if attempt == 1
            && let Some(refusal) = dry_run_pod(&kube.client, id, &desired).await?
        {
            // Not our doing if the template without the sidecar is refused too.
            if dry_run_pod(&kube.client, id, &current).await?.is_none() {
                return Err(Error::Workload(format!(
                    "{id} in namespace {}: the API server would refuse its pods with the sidecar: {refusal}\n  \
                     nothing was changed; {}",
                    id.namespace,
                    refusal_hint(&refusal)
                )));
            }
            eprintln!("note: {id}: pods are refused even without the sidecar ({refusal}); attaching anyway");
        }
        if args.change.dry_run == DryRun::Client {
            return Ok(Done { workload: id.clone(), action, object: after, before });
        }
        let patch =
            sidecar::attach_patch(id.kind, &current, &desired, object.metadata.resource_version.as_deref());
        match api.patch(&id.name, &patch_params(args.change.dry_run), &Patch::Strategic(&patch)).await {
            Ok(o) => {
                return Ok(Done { workload: id.clone(), action, object: object_value(id.kind, &o), before });
            }
            Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                object = api.get(&id.name).await.map_err(|e| api_error(e, "get", id))?;
            }
            Err(e) => return Err(api_error(e, "patch", id)),
        }
    }
    unreachable!("the last attempt returns")
}

/// Detaches the sidecar of one workload: removes exactly what its status
/// annotation lists.
pub async fn detach_one(
    kube: &Kube,
    id: &WorkloadId,
    mut object: DynamicObject,
    dry_run: DryRun,
) -> Result<Done, Error> {
    let api = id.kind.api(&kube.client, &id.namespace);
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let before = object_value(id.kind, &object);
        let current = template(id.kind, &object).cloned().unwrap_or(Value::Null);
        let mut desired = current.clone();
        let outcome = sidecar::uninject(&mut desired, id).map_err(|e| Error::Workload(e.to_string()))?;
        let after = with_template(id.kind, &before, &desired);
        let record = match (outcome, sidecar::attached_record(&current)?) {
            (sidecar::Uninjected::Removed, Some(record)) => record,
            _ => {
                return Ok(Done { workload: id.clone(), action: Change::NotAttached, object: after, before });
            }
        };
        if dry_run == DryRun::Client {
            return Ok(Done { workload: id.clone(), action: Change::Removed, object: after, before });
        }
        let patch = sidecar::detach_patch(id.kind, &record, object.metadata.resource_version.as_deref());
        match api.patch(&id.name, &patch_params(dry_run), &Patch::Strategic(&patch)).await {
            Ok(o) => {
                return Ok(Done {
                    workload: id.clone(),
                    action: Change::Removed,
                    object: object_value(id.kind, &o),
                    before,
                });
            }
            Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                object = api.get(&id.name).await.map_err(|e| api_error(e, "get", id))?;
            }
            Err(e) => return Err(api_error(e, "patch", id)),
        }
    }
    unreachable!("the last attempt returns")
}

/// Prints results the kubectl way and turns failures into the exit code.
struct Reporter<'a> {
    change: &'a ChangeArgs,
    objects: Vec<Value>,
    failed: usize,
}

impl Reporter<'_> {
    fn format(&self) -> Option<ObjectFormat> {
        match (self.change.output, self.change.dry_run) {
            (Some(f), _) => Some(f),
            (None, DryRun::Client) if !self.change.diff => Some(ObjectFormat::Yaml),
            _ => None,
        }
    }

    fn done(&mut self, done: &Done) -> Result<(), Error> {
        let suffix = match self.change.dry_run {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        };
        let line = format!("{} {}{suffix}", done.workload, done.action.in_cluster());
        if self.change.diff {
            let d = output::diff(
                &done.workload.to_string(),
                &output::for_display(done.before.clone()),
                &output::for_display(done.object.clone()),
            )?;
            output::print(&d)?;
        }
        if self.format().is_some() {
            eprintln!("{line}");
            self.objects.push(output::for_display(done.object.clone()));
        } else {
            output::print(&format!("{line}\n"))?;
        }
        Ok(())
    }

    /// Prints a workload's result, or counts its failure; other errors
    /// (API, output) end the command.
    fn outcome(&mut self, result: Result<Done, Error>) -> Result<Option<Done>, Error> {
        match result {
            Ok(done) => {
                self.done(&done)?;
                Ok(Some(done))
            }
            Err(e @ (Error::Workload(_) | Error::Usage(_))) => {
                self.failed(&e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn failed(&mut self, e: &Error) {
        eprintln!("error: {e}");
        self.failed += 1;
    }

    fn finish(self) -> Result<ExitCode, Error> {
        if let Some(format) = self.format()
            && !self.objects.is_empty()
        {
            output::print(&output::render(self.objects, format)?)?;
        }
        Ok(if self.failed > 0 { ExitCode::from(EXIT_WORKLOAD_FAILED) } else { ExitCode::SUCCESS })
    }
}

/// With `--wait`, follows the rollouts the changes started, all together;
/// `deadline` (the command's start plus `--timeout`) bounds the whole
/// command. Returns the workloads whose rollout failed, with why.
async fn wait_rollouts(
    kube: &Kube,
    change: &ChangeArgs,
    done: &[Done],
    attached: bool,
    deadline: std::time::Instant,
) -> Vec<(WorkloadId, Error)> {
    if !change.wait || change.dry_run != DryRun::None {
        return Vec::new();
    }
    let targets: Vec<crate::rollout::WaitTarget> = done
        .iter()
        .filter(|d| d.action.rolls())
        .map(|d| crate::rollout::WaitTarget { id: d.workload.clone(), attached })
        .collect();
    let results = crate::rollout::wait(&kube.client, &targets, deadline, change.timeout).await;
    targets.into_iter().zip(results).filter_map(|(t, r)| r.err().map(|e| (t.id, e))).collect()
}

/// Asks on a terminal whether to roll back; false when not interactive.
fn confirm(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim().eq_ignore_ascii_case("y")
}

/// The sidecar form for this API server: `--sidecar auto` and `native` read
/// its version once (`/version`); `container` asks nothing.
async fn sidecar_form(kube: &Kube, arg: SidecarFormArg) -> Result<SidecarForm, Error> {
    if arg == SidecarFormArg::Container {
        return Ok(SidecarForm::Container);
    }
    let minor = kube.server_minor().await?;
    let form = arg.resolve(Some(minor))?;
    if arg == SidecarFormArg::Auto && form == SidecarForm::Container {
        eprintln!(
            "note: the API server is Kubernetes 1.{minor}, before native sidecars (1.{}): the agent is added as a \
             plain container, which misses the pod's first packets and may miss its last ones \
             (docs/guide.md#two-forms-of-sidecar)",
            sidecar::NATIVE_SIDECAR_MINOR
        );
    }
    Ok(form)
}

/// Runs `kubectl bpc attach`.
pub async fn run_attach(args: &AttachArgs, kube: &Kube) -> Result<ExitCode, Error> {
    let deadline = std::time::Instant::now() + args.change.timeout;
    preflight::check_options(&args.options)?;
    let form = sidecar_form(kube, args.sidecar).await?;
    let targets = resolve(kube, &args.targets.workloads, args.targets.selector.as_deref(), false).await?;
    if targets.is_empty() {
        eprintln!("no workloads match the selector");
    }
    let mut planner = CapabilityPlanner::new(args.capabilities);
    let mut report = Reporter { change: &args.change, objects: Vec::new(), failed: 0 };
    let mut changed = Vec::new();
    for target in targets {
        let result = match target {
            Ok((id, object)) => attach_one(kube, &id, object, args, form, &mut planner).await,
            Err(e) => Err(e),
        };
        changed.extend(report.outcome(result)?);
    }
    for (workload, e) in wait_rollouts(kube, &args.change, &changed, true, deadline).await {
        report.failed(&e);
        if confirm(&format!("Detach the sidecar from {workload} now?")) {
            let object = workload.kind.api(&kube.client, &workload.namespace);
            match object.get(&workload.name).await {
                Ok(o) => match detach_one(kube, &workload, o, DryRun::None).await {
                    Ok(d) => output::print(&format!("{} {}\n", d.workload, d.action.in_cluster()))?,
                    Err(e) => report.failed(&e),
                },
                Err(e) => report.failed(&api_error(e, "get", &workload)),
            }
        }
    }
    report.finish()
}

/// Runs `kubectl bpc detach`.
pub async fn run_detach(args: &DetachArgs, kube: &Kube) -> Result<ExitCode, Error> {
    let deadline = std::time::Instant::now() + args.change.timeout;
    let targets = resolve(kube, &args.targets.workloads, args.targets.selector.as_deref(), args.all).await?;
    if targets.is_empty() {
        eprintln!("no attached workloads found");
    }
    let mut report = Reporter { change: &args.change, objects: Vec::new(), failed: 0 };
    let mut changed = Vec::new();
    for target in targets {
        let result = match target {
            Ok((id, object)) => detach_one(kube, &id, object, args.change.dry_run).await,
            Err(e) => Err(e),
        };
        changed.extend(report.outcome(result)?);
    }
    for (_, e) in wait_rollouts(kube, &args.change, &changed, false, deadline).await {
        report.failed(&e);
    }
    report.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_hint_names_what_to_change_for_the_policy_that_refused() {
        let quota = "pods \"web-x\" is forbidden: exceeded quota: mem, requested: limits.memory=128Mi";
        assert!(refusal_hint(quota).contains("ResourceQuota"));
        let pss =
            "pods \"web-x\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities";
        assert!(refusal_hint(pss).contains("--capabilities"));
        assert!(refusal_hint("admission webhook \"x\" denied the request").contains("names the policy"));
    }
}
