# lockgate's gateways on an existing Kubernetes cluster, from Terraform.
#
# The manifests are the ones in deploy/kubernetes/, with the values a team changes (image, replicas,
# the Postgres store, the admin token, the deployment spec) as variables; `terraform apply` renders
# them and applies them with `kubectl apply -f -` against the current kubectl context. It needs no
# provider plugin, so `terraform init -backend=false && terraform validate` checks it offline
# (tests/test_deploy_files.py does). A team on the hashicorp/kubernetes provider can feed
# local.manifests to kubernetes_manifest resources instead.
#
#   terraform -chdir=deploy/terraform init
#   terraform -chdir=deploy/terraform apply -var 'store_url=postgresql+psycopg://...' \
#     -var "admin_token=$(openssl rand -hex 16)"

terraform {
  required_version = ">= 1.4"
}

variable "namespace" {
  description = "Kubernetes namespace for the gateways."
  type        = string
  default     = "lockgate"
}

variable "image" {
  description = "The lockgate image (built from deploy/docker/Dockerfile)."
  type        = string
  default     = "lockgate:0.1.0"
}

variable "replicas" {
  description = "Gateways sharing the store; the HPA grows them up to max_replicas."
  type        = number
  default     = 3

  validation {
    condition     = var.replicas >= 2
    error_message = "Run at least 2 gateways so the PodDisruptionBudget can keep one up during a drain."
  }
}

variable "max_replicas" {
  description = "Most gateways the HorizontalPodAutoscaler may run."
  type        = number
  default     = 10
}

variable "store_url" {
  description = "The rollout store all gateways share: postgresql+psycopg://USER:PASSWORD@HOST:5432/DB."
  type        = string
  sensitive   = true

  validation {
    condition     = startswith(var.store_url, "postgresql+psycopg://")
    error_message = "Several gateways need one Postgres store: postgresql+psycopg://USER:PASSWORD@HOST:5432/DB."
  }
}

variable "admin_token" {
  description = "Bearer token for the admin API (LOCKGATE_ADMIN_TOKEN)."
  type        = string
  sensitive   = true
}

variable "mlflow_tracking_uri" {
  description = "The MLflow tracking server that holds the registered models."
  type        = string
  default     = "http://mlflow.lockgate.svc:5000"
}

variable "deployment_spec" {
  description = "Path of the deployment spec (YAML) the gateways serve and roll out."
  type        = string
  default     = "../compose/deployment.yaml"
}

locals {
  labels = { "app.kubernetes.io/name" = "lockgate" }

  manifests = [
    {
      apiVersion = "v1"
      kind       = "Namespace"
      metadata   = { name = var.namespace }
    },
    {
      apiVersion = "v1"
      kind       = "ConfigMap"
      metadata   = { name = "lockgate-deployment", namespace = var.namespace, labels = local.labels }
      data       = { "deployment.yaml" = file("${path.module}/${var.deployment_spec}") }
    },
    {
      apiVersion = "v1"
      kind       = "Secret"
      metadata   = { name = "lockgate", namespace = var.namespace, labels = local.labels }
      type       = "Opaque"
      stringData = { "admin-token" = var.admin_token, "store-url" = var.store_url }
    },
    {
      apiVersion = "apps/v1"
      kind       = "Deployment"
      metadata   = { name = "lockgate", namespace = var.namespace, labels = local.labels }
      spec = {
        replicas = var.replicas
        selector = { matchLabels = local.labels }
        template = {
          metadata = { labels = local.labels }
          spec = {
            securityContext = { runAsNonRoot = true, runAsUser = 10001, runAsGroup = 10001 }
            containers = [{
              name  = "lockgate"
              image = var.image
              args  = ["--store", "$(LOCKGATE_STORE_URL)", "--deployment", "/etc/lockgate/deployment.yaml", "--persist-feedback"]
              env = [
                { name = "LOCKGATE_STORE_URL", valueFrom = { secretKeyRef = { name = "lockgate", key = "store-url" } } },
                { name = "LOCKGATE_ADMIN_TOKEN", valueFrom = { secretKeyRef = { name = "lockgate", key = "admin-token" } } },
                { name = "MLFLOW_TRACKING_URI", value = var.mlflow_tracking_uri },
              ]
              ports          = [{ name = "http", containerPort = 8080 }]
              readinessProbe = { httpGet = { path = "/v2/health/ready", port = "http" }, periodSeconds = 5 }
              livenessProbe  = { httpGet = { path = "/v2/health/live", port = "http" }, periodSeconds = 10 }
              volumeMounts   = [{ name = "spec", mountPath = "/etc/lockgate", readOnly = true }]
            }]
            volumes = [{ name = "spec", configMap = { name = "lockgate-deployment" } }]
          }
        }
      }
    },
    {
      apiVersion = "v1"
      kind       = "Service"
      metadata   = { name = "lockgate", namespace = var.namespace, labels = local.labels }
      spec       = { selector = local.labels, ports = [{ name = "http", port = 80, targetPort = "http" }] }
    },
    {
      apiVersion = "autoscaling/v2"
      kind       = "HorizontalPodAutoscaler"
      metadata   = { name = "lockgate", namespace = var.namespace, labels = local.labels }
      spec = {
        scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = "lockgate" }
        minReplicas    = var.replicas
        maxReplicas    = var.max_replicas
        metrics        = [{ type = "Resource", resource = { name = "cpu", target = { type = "Utilization", averageUtilization = 70 } } }]
      }
    },
    {
      apiVersion = "policy/v1"
      kind       = "PodDisruptionBudget"
      metadata   = { name = "lockgate", namespace = var.namespace, labels = local.labels }
      spec       = { minAvailable = var.replicas - 1, selector = { matchLabels = local.labels } }
    },
  ]

  # kubectl reads a JSON List as one document
  rendered = jsonencode({ apiVersion = "v1", kind = "List", items = local.manifests })
}

resource "terraform_data" "lockgate" {
  triggers_replace = [sha256(local.rendered)]

  provisioner "local-exec" {
    command     = "kubectl apply -f -  <<'MANIFESTS'\n${local.rendered}\nMANIFESTS"
    interpreter = ["bash", "-c"]
  }
}

output "kinds" {
  description = "The resources applied, in order."
  value       = [for m in local.manifests : "${m.kind}/${m.metadata.name}"]
}

output "manifests" {
  description = "The rendered manifests (tests validate them against the Kubernetes schemas)."
  value       = local.manifests
  sensitive   = true
}
