package gitops

// How Argo CD's application controller (v3.5) compares a desired object with the live one, with
// the settings of a default installation, rebuilt here from gitops-engine's own pieces:
//
//   - Before diffing, the controller sets the namespace of a namespaced object that has none to the
//     application's destination namespace, and adds its tracking annotation
//     (argocd.argoproj.io/tracking-id) to every desired object, which its apply then writes to the
//     live one. Here the examples get the namespace of the test, and neither side gets a tracking
//     annotation: the caller applies the examples as they are, so the annotation would be equal on
//     both sides and change nothing.
//   - It diffs with gitops-engine's diff.Diff and these options: the normalizer below, aggregated
//     roles not ignored, the GVK parser built from the cluster's OpenAPI schema, field manager
//     argocd-controller, mutation webhooks ignored in server-side diffs, structured merge diff only
//     with the application's ServerSideApply=true sync option, server-side diff only when the
//     controller is started with it or the application has the ServerSideDiff=true compare option.
//   - Without those options diff.Diff does a three-way diff: the last-applied-configuration
//     annotation that its client-side apply wrote, the desired object and the live one. Fields of
//     the live object that the annotation does not have (server-side defaults, status, finalizers)
//     are left out of the patch it predicts.
//   - The normalizer is made of an ignore normalizer (the application's ignoreDifferences and the
//     ignoreDifferences of the resource overrides) and a known-types normalizer (a no-op for a
//     custom resource without overrides). The settings add one override by default: with
//     resource.compareoptions ignoreResourceStatusField unset (or "all"), /status of every kind
//     (group and kind "*") is ignored. So the ignore normalizer of a default installation removes
//     .status, and nothing else, from a CognitoMfaPolicy.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/diff"
	"github.com/go-logr/logr/testr"
	"github.com/pmezard/go-difflib/difflib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/kube-openapi/pkg/util/proto"
	"sigs.k8s.io/yaml"
)

// argoCDManager is the field manager of Argo CD's applies and server-side dry runs.
const argoCDManager = "argocd-controller"

// argoCDDiffOptions returns the options Argo CD's controller passes to diff.Diff with default
// settings. structuredMergeDiff stands for the ServerSideApply=true sync option; a non-nil
// dryRunner for server-side diff.
func argoCDDiffOptions(t *testing.T, parser *managedfields.GvkParser, structuredMergeDiff bool, dryRunner diff.ServerSideDryRunner) []diff.Option {
	opts := []diff.Option{
		diff.WithNormalizer(defaultNormalizer{}),
		diff.IgnoreAggregatedRoles(false),
		diff.WithStructuredMergeDiff(structuredMergeDiff),
		diff.WithGVKParser(parser),
		diff.WithManager(argoCDManager),
		diff.WithIgnoreMutationWebhook(true),
		diff.WithLogr(testr.New(t)),
	}
	if dryRunner != nil {
		opts = append(opts, diff.WithServerSideDiff(true), diff.WithServerSideDryRunner(dryRunner))
	}
	return opts
}

// defaultNormalizer does what the normalizer of a default Argo CD installation does to a custom
// resource: it drops .status.
type defaultNormalizer struct{}

func (defaultNormalizer) Normalize(un *unstructured.Unstructured) error {
	unstructured.RemoveNestedField(un.Object, "status")
	return nil
}

// dryRunApplier runs the server-side apply dry run of a server-side diff, as Argo CD's
// `kubectl apply --server-side --dry-run=server --force-conflicts` does, and returns the object the
// API server would store, managed fields included.
type dryRunApplier struct {
	resource dynamic.NamespaceableResourceInterface
}

func (d *dryRunApplier) Run(ctx context.Context, obj *unstructured.Unstructured, manager string) (string, error) {
	out, err := d.resource.Namespace(obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{
		FieldManager: manager,
		Force:        true,
		DryRun:       []string{metav1.DryRunAll},
	})
	if err != nil {
		return "", fmt.Errorf("server-side apply dry run: %w", err)
	}
	data, err := out.MarshalJSON()
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// newGVKParser builds the parser of typed objects from the cluster's OpenAPI v2 schema, as Argo CD's
// cluster cache does. An aggregated API server may publish a second definition of a kind the
// schema already has, which the parser refuses: then only the first definition of each kind is
// kept.
func newGVKParser(disco discovery.OpenAPISchemaInterface) (*managedfields.GvkParser, error) {
	doc, err := disco.OpenAPISchema()
	if err != nil {
		return nil, fmt.Errorf("reading the OpenAPI schema: %w", err)
	}
	models, err := proto.NewOpenAPIData(doc)
	if err != nil {
		return nil, fmt.Errorf("reading the OpenAPI schema: %w", err)
	}
	parser, err := managedfields.NewGVKParser(models, false)
	if err == nil {
		return parser, nil
	}
	parser, err2 := managedfields.NewGVKParser(firstDefinitionOfEachKind(models), false)
	if err2 != nil {
		return nil, fmt.Errorf("building the GVK parser: %w (and without duplicate kinds: %v)", err, err2)
	}
	return parser, nil
}

// modelsSubset lists only some of the models of a schema.
type modelsSubset struct {
	proto.Models
	names []string
}

func (m modelsSubset) ListModels() []string { return m.names }

func firstDefinitionOfEachKind(models proto.Models) proto.Models {
	seen := map[string]bool{}
	var names []string
	for _, name := range models.ListModels() {
		kinds := modelKinds(models.LookupModel(name))
		duplicate := false
		for _, kind := range kinds {
			duplicate = duplicate || seen[kind]
		}
		if duplicate {
			continue
		}
		for _, kind := range kinds {
			seen[kind] = true
		}
		names = append(names, name)
	}
	return modelsSubset{Models: models, names: names}
}

// modelKinds returns the group/version/kind triples of a model's x-kubernetes-group-version-kind.
func modelKinds(model proto.Schema) []string {
	if model == nil {
		return nil
	}
	list, _ := model.GetExtensions()["x-kubernetes-group-version-kind"].([]any)
	var kinds []string
	for _, item := range list {
		field := func(key string) string { return "" }
		switch m := item.(type) {
		case map[any]any:
			field = func(key string) string { s, _ := m[key].(string); return s }
		case map[string]any:
			field = func(key string) string { s, _ := m[key].(string); return s }
		}
		if kind := field("kind"); kind != "" {
			kinds = append(kinds, field("group")+"/"+field("version")+"/"+kind)
		}
	}
	return kinds
}

// describe shows a diff result the way Argo CD's diff view does: the normalized live object and
// the live object predicted after a sync, as YAML, and a unified diff between them.
func describe(res *diff.DiffResult) string {
	live, predicted := toYAML(res.NormalizedLive), toYAML(res.PredictedLive)
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(live),
		B:        difflib.SplitLines(predicted),
		FromFile: "live (normalized)",
		ToFile:   "predicted live (after a sync)",
		Context:  3,
	})
	if err != nil {
		return err.Error()
	}
	if text == "" {
		// Equal as YAML, different as JSON (key order, number formatting): show both.
		return fmt.Sprintf("live (normalized):\n%s\npredicted live:\n%s", res.NormalizedLive, res.PredictedLive)
	}
	return text
}

func toYAML(data []byte) string {
	out, err := yaml.JSONToYAML(data)
	if err != nil {
		return string(data)
	}
	return string(out)
}

// predictedSpecField returns spec.<field> of the predicted live object, as a string.
func predictedSpecField(t *testing.T, res *diff.DiffResult, field string) string {
	t.Helper()
	var predicted map[string]any
	if err := json.Unmarshal(res.PredictedLive, &predicted); err != nil {
		t.Fatalf("predicted live: %v", err)
	}
	value, _, _ := unstructured.NestedFieldNoCopy(predicted, "spec", field)
	s, _ := value.(string)
	return s
}

func keys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
