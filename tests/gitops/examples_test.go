package gitops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/gitops-engine/pkg/diff"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	examplesDir = "../../examples"
	crdFile     = "../../crds/cognitomfapolicies.cognitomfa.io.yaml"
)

var policyKind = schema.GroupKind{Group: "cognitomfa.io", Kind: "CognitoMfaPolicy"}

// example is one CognitoMfaPolicy of an example file, as Argo CD would apply it.
type example struct {
	file string
	obj  *unstructured.Unstructured
}

// loadExamples returns the CognitoMfaPolicy objects of dir/*.yaml (a file may hold several
// documents; other kinds and subfolders are skipped), each with its namespace set to namespace.
func loadExamples(dir, namespace string) ([]example, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []example
	for _, file := range files {
		objs, err := readManifests(file)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if obj.GroupVersionKind().GroupKind() != policyKind {
				continue
			}
			obj.SetNamespace(namespace)
			out = append(out, example{file: filepath.Base(file), obj: obj})
		}
	}
	return out, nil
}

// readManifests splits a YAML (or JSON) file into its objects, as Argo CD's repo server reads a
// directory of plain manifests: each document converted to JSON, empty documents skipped.
func readManifests(file string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var raw runtime.RawExtension
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		raw.Raw = bytes.TrimSpace(raw.Raw)
		if len(raw.Raw) == 0 || bytes.Equal(raw.Raw, []byte("null")) {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw.Raw); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		objs = append(objs, obj)
	}
}

// TestExamplesLoad checks what TestExamplesAreInSync compares, without a cluster: the examples hold
// CognitoMfaPolicy objects, with names unique in a namespace.
func TestExamplesLoad(t *testing.T) {
	examples, err := loadExamples(examplesDir, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) == 0 {
		t.Fatalf("no %s in %s", policyKind, examplesDir)
	}
	seen := map[string]string{}
	for _, ex := range examples {
		if other, ok := seen[ex.obj.GetName()]; ok {
			t.Errorf("%s and %s both define %s", other, ex.file, ex.obj.GetName())
		}
		seen[ex.obj.GetName()] = ex.file
		if mfa, _, _ := unstructured.NestedString(ex.obj.Object, "spec", "mfaConfiguration"); mfa == "" {
			t.Errorf("%s: spec.mfaConfiguration is not a string (a bare ON or OFF reads as a boolean)", ex.file)
		}
	}
}

// TestThreeWayDiffOfDefaultedExamples runs the comparison of Argo CD's default mode without a
// cluster, on a live object made here the way an API server and the operator would make it: the
// example with the CRD's schema defaults filled in, the last-applied annotation of a client-side
// apply, server-set metadata, a finalizer and a status. It checks the comparison itself (in sync,
// and OutOfSync after a spec change); only TestExamplesAreInSync, against a real API server,
// proves the examples are in sync.
func TestThreeWayDiffOfDefaultedExamples(t *testing.T) {
	schema, err := crdSchema(crdFile, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	examples, err := loadExamples(examplesDir, "ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		t.Run(ex.file+"/"+ex.obj.GetName(), func(t *testing.T) {
			live := simulatedLive(t, ex.obj, schema)
			opts := argoCDDiffOptions(t, nil, false, nil)
			res, err := diff.Diff(ex.obj.DeepCopy(), live.DeepCopy(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			if res.Modified {
				t.Errorf("reported OutOfSync:\n%s", describe(res))
			}
			for _, change := range specChanges(live) {
				changed := ex.obj.DeepCopy()
				if err := unstructured.SetNestedField(changed.Object, change.value, "spec", change.field); err != nil {
					t.Fatal(err)
				}
				res, err := diff.Diff(changed, live.DeepCopy(), opts...)
				if err != nil {
					t.Fatal(err)
				}
				if !res.Modified {
					t.Errorf("with %s: reported in sync", change)
				} else if got := predictedSpecField(t, res, change.field); got != change.value {
					t.Errorf("with %s: predicted live has spec.%s %q:\n%s", change, change.field, got, describe(res))
				}
			}
		})
	}
}

// simulatedLive returns the object an API server would hold after a client-side apply of config
// and a reconcile of the operator.
func simulatedLive(t *testing.T, config *unstructured.Unstructured, schema map[string]any) *unstructured.Unstructured {
	t.Helper()
	live := config.DeepCopy()
	applyDefaults(live.Object, schema)
	lastApplied, err := json.Marshal(config.Object)
	if err != nil {
		t.Fatal(err)
	}
	annotations := live.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[diff.AnnotationLastAppliedConfig] = string(lastApplied) + "\n"
	live.SetAnnotations(annotations)
	live.SetUID("4f1b2c3d-0000-4000-8000-000000000001")
	live.SetResourceVersion("4242")
	live.SetGeneration(1)
	live.SetCreationTimestamp(metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	live.SetFinalizers([]string{finalizerName})
	status := map[string]any{
		"observedGeneration": int64(1),
		"lastSyncTime":       "2026-01-02T03:05:00Z",
		"conditions": []any{map[string]any{
			"type":               "Ready",
			"status":             "True",
			"reason":             "InSync",
			"message":            "the pool matches the policy",
			"lastTransitionTime": "2026-01-02T03:05:00Z",
		}},
	}
	if err := unstructured.SetNestedMap(live.Object, status, "status"); err != nil {
		t.Fatal(err)
	}
	return live
}

// crdSchema returns the openAPIV3Schema of one version of the CRD in file.
func crdSchema(file, version string) (map[string]any, error) {
	objs, err := readManifests(file)
	if err != nil {
		return nil, err
	}
	for _, obj := range objs {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
		for _, v := range versions {
			v, _ := v.(map[string]any)
			if v["name"] != version {
				continue
			}
			s, found, err := unstructured.NestedMap(v, "schema", "openAPIV3Schema")
			if err != nil || !found {
				return nil, fmt.Errorf("%s: version %s has no schema", file, version)
			}
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s: no CustomResourceDefinition with version %s", file, version)
}

// applyDefaults fills in the `default:` values of a structural schema that value lacks, at every
// level, as the API server does when it stores a custom resource.
func applyDefaults(value any, schema map[string]any) {
	switch v := value.(type) {
	case map[string]any:
		properties, _ := schema["properties"].(map[string]any)
		for name, p := range properties {
			property, _ := p.(map[string]any)
			if _, present := v[name]; !present {
				def, ok := property["default"]
				if !ok {
					continue
				}
				v[name] = runtime.DeepCopyJSONValue(def)
			}
			applyDefaults(v[name], property)
		}
	case []any:
		items, _ := schema["items"].(map[string]any)
		for _, item := range v {
			applyDefaults(item, items)
		}
	}
}
