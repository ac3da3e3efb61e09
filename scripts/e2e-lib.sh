# shellcheck shell=bash
# What the cluster e2e scripts share (sourced, not run): the report lines and
# the test app's Deployment, so the three scenarios cannot drift apart.
# A script may set e2e_tag (e.g. "capture") before sourcing.

e2e_started=$SECONDS
step() { printf '\n== [%s%3ds] %s\n' "${e2e_tag:+$e2e_tag }" "$((SECONDS - e2e_started))" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# app_deployment NAME REPLICAS [COMMAND] [POD-SPEC LINE] [CONTAINER LINE]:
# a Deployment of $BPC_APP_IMAGE labelled app=NAME, its container named app,
# port 8080 named http. COMMAND is a YAML list; the default serves NAME with
# busybox httpd on 8080.
app_deployment() {
  local command=${3:-"[sh, -c, 'mkdir -p /tmp/www && echo $1 > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']"}
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, labels: {app: $1}}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      terminationGracePeriodSeconds: 1
      ${4:-}
      containers:
      - name: app
        image: $BPC_APP_IMAGE
        imagePullPolicy: IfNotPresent
        command: $command
        ports: [{containerPort: 8080, name: http}]
        ${5:-}
EOF
}
