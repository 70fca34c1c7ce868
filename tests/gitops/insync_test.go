// Package gitops proves that Argo CD reports every example CognitoMfaPolicy (examples/*.yaml) as
// Synced once it has been applied: neither the values the CRD schema defaults on the server
// (spec.deletionPolicy, spec.managementPolicy, the webAuthnConfiguration defaults) nor the status
// and the finalizer that the operator writes may leave an application perpetually OutOfSync.
//
// It uses gitops-engine, the library Argo CD's application controller diffs with, and calls it the
// way the controller does with default settings (see argocd_test.go): the example as the desired
// state, the object the API server holds as the live state, and the normalizer that Argo CD builds
// from its default settings (resource.compareoptions ignoreResourceStatusField "all": /status of
// every resource is ignored).
//
// TestExamplesAreInSync needs a real API server and is skipped unless CMO_GITOPS_NAMESPACE is set.
// Before running it, the caller must have, on the cluster that KUBECONFIG (or ~/.kube/config) names:
//
//  1. installed the CRD, crds/cognitomfapolicies.cognitomfa.io.yaml;
//
//  2. applied every example into the namespace $CMO_GITOPS_NAMESPACE the way Argo CD applies it.
//     The examples name the namespace "identity": rewrite it to $CMO_GITOPS_NAMESPACE (as a
//     kustomize namespace transformer would; kubectl refuses -n with a manifest that names another
//     namespace). By default (CMO_GITOPS_APPLY unset or "client-side") with a client-side apply,
//     as Argo CD does without the ServerSideApply=true sync option; it leaves the
//     kubectl.kubernetes.io/last-applied-configuration annotation that the three-way diff needs:
//
//     for f in examples/*.yaml; do
//     sed "s/^  namespace: identity\$/  namespace: $CMO_GITOPS_NAMESPACE/" "$f" |
//     kubectl apply --field-manager=argocd-controller -f -
//     done
//
//     With CMO_GITOPS_APPLY=server-side, as Argo CD does with the ServerSideApply=true sync
//     option: the same, with `kubectl apply --server-side --force-conflicts
//     --field-manager=argocd-controller -f -`;
//
//  3. run the operator against those objects until it has written .status of every one of them
//     (server-side apply, field manager cognito-mfa-operator), and, for the examples whose
//     deletionPolicy is Reset or Restore, added its finalizer. The test fails when an object has
//     no status written by the operator: without it, it would prove nothing about status.
//
// Each example is then compared in the mode its apply implies (three-way diff against the
// last-applied annotation, or structured merge diff for server-side apply) and, in either case,
// with the ServerSideDiff=true compare option (a server-side apply dry run by argocd-controller).
// Each comparison must report no difference, and a copy of the example with a changed spec field
// must be reported as different: the check can fail.
package gitops

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/diff"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// The field managers of the operator (src/controller.rs).
	statusManager    = "cognito-mfa-operator"
	finalizerManager = "cognito-mfa-operator-finalizer"
	finalizerName    = "cognitomfa.io/deletion-policy"
)

// How the caller applied the examples: the value of CMO_GITOPS_APPLY.
const (
	clientSideApply = "client-side"
	serverSideApply = "server-side"
)

func TestExamplesAreInSync(t *testing.T) {
	namespace := os.Getenv("CMO_GITOPS_NAMESPACE")
	if namespace == "" {
		t.Skip("CMO_GITOPS_NAMESPACE is not set: this test compares the examples with the objects " +
			"applied into that namespace of a real cluster (see the package comment)")
	}
	applied := os.Getenv("CMO_GITOPS_APPLY")
	if applied == "" {
		applied = clientSideApply
	}
	if applied != clientSideApply && applied != serverSideApply {
		t.Fatalf("CMO_GITOPS_APPLY=%q: want %q or %q", applied, clientSideApply, serverSideApply)
	}

	examples, err := loadExamples(examplesDir, namespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) == 0 {
		t.Fatalf("no %s in %s", policyKind, examplesDir)
	}

	config, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	parser, err := newGVKParser(disco)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for _, ex := range examples {
		t.Run(ex.file+"/"+ex.obj.GetName(), func(t *testing.T) {
			gvk := ex.obj.GroupVersionKind()
			if parser.Type(gvk) == nil {
				t.Fatalf("the cluster's OpenAPI schema has no %s: is the CRD installed?", gvk)
			}
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %v (is the CRD installed?)", gvk, err)
			}
			resource := client.Resource(mapping.Resource).Namespace(namespace)
			live, err := resource.Get(ctx, ex.obj.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatalf("reading the live object (was the example applied into %s?): %v", namespace, err)
			}
			checkPreconditions(t, live, applied)

			runner := &dryRunApplier{resource: client.Resource(mapping.Resource)}
			modes := []compareMode{{
				name:    "ServerSideDiff=true",
				options: argoCDDiffOptions(t, parser, applied == serverSideApply, runner),
			}}
			if applied == clientSideApply {
				modes = append([]compareMode{{
					name:    "default (client-side apply, three-way diff)",
					options: argoCDDiffOptions(t, parser, false, nil),
				}}, modes...)
			} else {
				modes = append([]compareMode{{
					name:    "ServerSideApply=true (structured merge diff)",
					options: argoCDDiffOptions(t, parser, true, nil),
				}}, modes...)
			}

			for _, mode := range modes {
				res, err := diff.Diff(ex.obj.DeepCopy(), live.DeepCopy(), mode.options...)
				if err != nil {
					t.Errorf("%s: diff: %v", mode.name, err)
					continue
				}
				if res.Modified {
					t.Errorf("%s: Argo CD would report %s/%s OutOfSync:\n%s",
						mode.name, namespace, ex.obj.GetName(), describe(res))
				}
				for _, change := range specChanges(live) {
					changed := ex.obj.DeepCopy()
					if err := unstructured.SetNestedField(changed.Object, change.value, "spec", change.field); err != nil {
						t.Fatal(err)
					}
					res, err := diff.Diff(changed, live.DeepCopy(), mode.options...)
					if err != nil {
						t.Errorf("%s: diff with %s: %v", mode.name, change, err)
						continue
					}
					if !res.Modified {
						t.Errorf("%s: a copy of the example with %s was reported in sync: the comparison cannot fail",
							mode.name, change)
						continue
					}
					if got := predictedSpecField(t, res, change.field); got != change.value {
						t.Errorf("%s: with %s, predicted live has spec.%s %q:\n%s",
							mode.name, change, change.field, got, describe(res))
					}
				}
			}
		})
	}
}

// checkPreconditions fails the test unless live was applied the way applied says and the operator
// has written its status; it logs the other field managers of live.
func checkPreconditions(t *testing.T, live *unstructured.Unstructured, applied string) {
	t.Helper()
	owners := map[string]bool{}
	for _, entry := range live.GetManagedFields() {
		owner := fmt.Sprintf("%s (%s", entry.Manager, entry.Operation)
		if entry.Subresource != "" {
			owner += ", " + entry.Subresource
		}
		owners[owner+")"] = true
	}
	t.Logf("field managers of the live object: %v", keys(owners))

	switch applied {
	case clientSideApply:
		orig, err := diff.GetLastAppliedConfigAnnotation(live)
		if err != nil {
			t.Fatal(err)
		}
		if orig == nil {
			t.Fatalf("the live object has no %s annotation: apply the examples client-side "+
				"(kubectl apply, without --server-side) or set CMO_GITOPS_APPLY=%s",
				diff.AnnotationLastAppliedConfig, serverSideApply)
		}
	case serverSideApply:
		if !hasManager(live, argoCDManager, metav1.ManagedFieldsOperationApply, "") {
			t.Fatalf("no field manager %s with operation Apply: apply the examples with "+
				"kubectl apply --server-side --field-manager=%s", argoCDManager, argoCDManager)
		}
	}

	status, _, _ := unstructured.NestedMap(live.Object, "status")
	if len(status) == 0 || !hasManager(live, statusManager, metav1.ManagedFieldsOperationApply, "status") {
		t.Fatalf("the operator (field manager %s) has not written the status yet: run it until it has, "+
			"or this check proves nothing about status", statusManager)
	}
	policy, _, _ := unstructured.NestedString(live.Object, "spec", "deletionPolicy")
	if policy == "Reset" || policy == "Restore" {
		hasFinalizer := false
		for _, f := range live.GetFinalizers() {
			hasFinalizer = hasFinalizer || f == finalizerName
		}
		if !hasFinalizer || !hasManager(live, finalizerManager, "", "") {
			t.Logf("deletionPolicy %s, but the operator's finalizer %s (field manager %s) is not there yet",
				policy, finalizerName, finalizerManager)
		}
	}
}

// hasManager tells whether live has a managedFields entry of manager, with that operation and
// subresource when they are not empty.
func hasManager(live *unstructured.Unstructured, manager string, operation metav1.ManagedFieldsOperationType, subresource string) bool {
	for _, entry := range live.GetManagedFields() {
		if entry.Manager == manager && (operation == "" || entry.Operation == operation) &&
			(subresource == "" || entry.Subresource == subresource) {
			return true
		}
	}
	return false
}

// compareMode is one way Argo CD's controller compares a resource: the diff options it passes.
type compareMode struct {
	name    string
	options []diff.Option
}

// specChange sets one spec field to value in a copy of an example.
type specChange struct {
	field string
	value string
}

func (c specChange) String() string { return fmt.Sprintf("spec.%s: %s", c.field, c.value) }

// specChanges returns changes to an example that Argo CD must report as OutOfSync: a field every
// example sets, and a field that most examples leave to the CRD default. Both stay valid for the
// CRD's validation rules, so the server-side dry run accepts them.
func specChanges(live *unstructured.Unstructured) []specChange {
	var changes []specChange
	// OFF allows no factor, ON and OPTIONAL need one: swap ON and OPTIONAL only.
	switch mfa, _, _ := unstructured.NestedString(live.Object, "spec", "mfaConfiguration"); mfa {
	case "ON":
		changes = append(changes, specChange{field: "mfaConfiguration", value: "OPTIONAL"})
	case "OPTIONAL":
		changes = append(changes, specChange{field: "mfaConfiguration", value: "ON"})
	}
	otherPolicy := "Observe"
	if policy, _, _ := unstructured.NestedString(live.Object, "spec", "managementPolicy"); policy == "Observe" {
		otherPolicy = "Enforce"
	}
	return append(changes, specChange{field: "managementPolicy", value: otherPolicy})
}
