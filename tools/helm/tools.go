//go:build tools

// Package tools pins helm's command so `go mod tidy` keeps its dependencies in go.sum; build.sh
// builds helm.sh/helm/v4/cmd/helm from this module (its own: helm's k8s.io versions differ from
// the control plane's).
package tools

import _ "helm.sh/helm/v4/cmd/helm"
