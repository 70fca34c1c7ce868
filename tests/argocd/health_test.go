// Tests of the Argo CD health check for CognitoMfaPolicy and
// CognitoMfaBaseline, charts/cognito-mfa-operator/argocd/health.lua (one
// script for both kinds).
//
// The script runs in gopher-lua (the Lua 5.1 in Go that Argo CD embeds, at the
// version Argo CD pins), in a state set up the way Argo CD sets one up for a
// health check installed as an argocd-cm override without useOpenLibs, which
// is how docs/argocd.md installs it. That leaves the package, base and table
// libraries and a reduced os library reached only through require("os"): no
// string or math library, and no string methods. The script's return value is
// turned into a health status by Argo CD's rules, an error included (Unknown).
//
// TestHealthCheck runs the script against every fixture listed in
// health_test.yaml (the format of Argo CD's own health_test.yaml files, plus
// messageContains), with one subtest per fixture. It also holds the fixtures
// to the operator: each must be valid against its kind's CRD in crds/, and its
// conditions shaped like those the operator writes, with the kind's reasons
// (src/status.rs, src/status/baseline.rs); every Ready reason of each kind
// must have a fixture of that kind. TestDocsCopies checks that each copy of
// the script in docs/argocd.md, under the argocd-cm key of either kind, is the
// file, byte for byte. TestSandbox shows that the state is as strict as Argo
// CD's: a script that needs the string or math library, or never ends, fails
// here as it fails there.
//
// Run from this directory: go test ./...
package argocd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// Paths from the repository root.
const (
	scriptPath  = "charts/cognito-mfa-operator/argocd/health.lua"
	testsPath   = "tests/argocd/health_test.yaml"
	docPath     = "docs/argocd.md"
	reasonsPath = "src/status.rs"
)

// ---------------------------------------------------------------------------
// The Lua state, as Argo CD makes it
// ---------------------------------------------------------------------------

// luaTimeout is how long Argo CD lets a script run before it cancels it.
const luaTimeout = time.Second

// healthStatus is Argo CD's HealthStatus (gitops-engine/pkg/health/health.go),
// with the same JSON names: the script's return value is decoded into it.
type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// The statuses Argo CD accepts from a script (isValidHealthStatusCode in
// util/lua/lua.go); any other string becomes Unknown.
var validStatuses = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

// newLuaState makes a state as Argo CD's runLuaWithResourceActionParameters
// (util/lua/lua.go) does for a script whose override has no useOpenLibs:
// lua.NewState with SkipOpenLibs, then only the package, base and table
// libraries, each opened by calling its opener with the library's name, and
// the reduced os library (util/lua/oslib_safe.go) preloaded, so that
// require("os") returns it.
//
// Argo CD also opens the reduced os library as a global, but under the table
// library's name; gopher-lua's RegisterModule hands back the table module,
// already loaded, untouched, so that adds nothing: there is no global os.
// TestSandbox checks the result.
func newLuaState() *lua.LState {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	libs := []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	}
	for _, lib := range libs {
		err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name))
		if err != nil {
			panic(fmt.Sprintf("opening the %q library: %v", lib.name, err))
		}
	}
	L.PreloadModule(lua.OsLibName, openReducedOs)
	return L
}

// reducedOsFuncs is the reduced os library: time and date and nothing else.
// Argo CD's (util/lua/oslib_safe.go) are taken from gopher-lua's os library;
// these are gopher-lua's own, picked out of a state that opened it.
var reducedOsFuncs = sync.OnceValue(func() map[string]lua.LGFunction {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	if err := L.CallByParam(lua.P{Fn: L.NewFunction(lua.OpenOs), NRet: 1, Protect: true}, lua.LString(lua.OsLibName)); err != nil {
		panic(fmt.Sprintf("opening gopher-lua's os library: %v", err))
	}
	osLib := L.Get(-1).(*lua.LTable)
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		fn, ok := osLib.RawGetString(name).(*lua.LFunction)
		if !ok || !fn.IsG {
			panic("gopher-lua's os library has no Go function " + name)
		}
		funcs[name] = fn.GFunction
	}
	return funcs
})

// openReducedOs is the loader behind require("os").
func openReducedOs(L *lua.LState) int {
	L.Push(L.SetFuncs(L.NewTable(), reducedOsFuncs()))
	return 1
}

// toLua converts a decoded Kubernetes object for the script's global obj by
// the rules of Argo CD's decodeValue (util/lua/lua.go): objects and arrays
// become tables, numbers (float64 from YAML or JSON, int64 from the API
// server's decoder) become numbers, a json.Number becomes a string, and null,
// or anything else, becomes nil.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), toLua(L, item))
		}
		return t
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(L, item))
		}
		return t
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(string(v))
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(float64(v))
	case int32:
		return lua.LNumber(float64(v))
	case int64:
		return lua.LNumber(float64(v))
	default:
		return lua.LNil
	}
}

// fromLua converts the script's return value to what encoding/json makes of
// it, by the rules of the encoder Argo CD uses for it (layeh.com/gopher-json):
// an empty table is an empty array; a table whose first key is a number must
// be a sequence 1..n (an array), one whose first key is a string must have
// only string keys (an object); a table met twice, functions and other values
// are errors.
func fromLua(v lua.LValue, seen map[*lua.LTable]bool) (any, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		return float64(v), nil
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		if seen[v] {
			return nil, errors.New("cannot encode recursively nested tables to JSON")
		}
		seen[v] = true
		key, value := v.Next(lua.LNil)
		switch key.Type() {
		case lua.LTNil:
			return []any{}, nil
		case lua.LTNumber:
			var arr []any
			for n := lua.LNumber(1); key != lua.LNil; n++ {
				if k, ok := key.(lua.LNumber); !ok || k != n {
					return nil, errors.New("cannot encode sparse array or mixed keys")
				}
				item, err := fromLua(value, seen)
				if err != nil {
					return nil, err
				}
				arr = append(arr, item)
				key, value = v.Next(key)
			}
			return arr, nil
		case lua.LTString:
			obj := map[string]any{}
			for key != lua.LNil {
				k, ok := key.(lua.LString)
				if !ok {
					return nil, errors.New("cannot encode mixed or invalid key types")
				}
				item, err := fromLua(value, seen)
				if err != nil {
					return nil, err
				}
				obj[string(k)] = item
				key, value = v.Next(key)
			}
			return obj, nil
		default:
			return nil, errors.New("cannot encode mixed or invalid key types")
		}
	default:
		return nil, fmt.Errorf("cannot encode %s to JSON", v.Type())
	}
}

// executeHealthLua runs a health script on obj and reads its result as Argo
// CD's VM.ExecuteHealthLua (util/lua/lua.go) does: a table is decoded into a
// HealthStatus through JSON; a JSON type error there (an empty table, which
// encodes as [], or a message that is not a string) gives an empty
// HealthStatus, as does nil; a status Argo CD does not know gives Unknown
// with "Lua returned an invalid health status"; anything else is an error.
// Errors of the running script lose their Lua stack trace, as in Argo CD.
func executeHealthLua(script string, obj map[string]any) (*healthStatus, error) {
	L := newLuaState()
	defer L.Close()
	ctx, cancel := context.WithTimeout(context.Background(), luaTimeout)
	defer cancel()
	L.SetContext(ctx)
	// Argo CD sets actionParams for every script; for a health check it is empty.
	L.SetGlobal("actionParams", L.CreateTable(0, 0))
	L.SetGlobal("obj", toLua(L, obj))

	fn, err := L.LoadString(script)
	if err == nil {
		L.Push(fn)
		err = L.PCall(0, lua.MultRet, nil)
	}
	if err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return nil, err
	}

	ret := L.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return &healthStatus{}, nil
	case lua.LTTable:
	default:
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	value, err := fromLua(ret, map[*lua.LTable]bool{})
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	var hs healthStatus
	if err := json.Unmarshal(data, &hs); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &healthStatus{}, nil
		}
		return nil, err
	}
	if !slices.Contains(validStatuses, hs.Status) {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return &hs, nil
}

// assessHealth is the health Argo CD shows for obj: an error of the script
// becomes Unknown with the error as message (GetResourceHealth in
// gitops-engine/pkg/health/health.go).
func assessHealth(script string, obj map[string]any) healthStatus {
	hs, err := executeHealthLua(script, obj)
	if err != nil {
		return healthStatus{Status: "Unknown", Message: err.Error()}
	}
	return *hs
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

// repoRoot is the repository root: two levels above this file.
func repoRoot(t *testing.T) string {
	t.Helper()
	// go test runs a package's tests in the package's folder, two below the root.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("cannot tell the working directory: %v", err)
	}
	root := filepath.Join(wd, "..", "..")
	if _, err := os.Stat(filepath.Join(root, scriptPath)); err != nil {
		t.Fatalf("not the repository root (%s has no %s): %v", root, scriptPath, err)
	}
	return root
}

func readFile(t *testing.T, root, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// decodeYAML reads YAML strictly: a duplicate key is an error. Timestamps stay
// strings, as the API server sends them.
func decodeYAML(data []byte, out any) error {
	return yaml.UnmarshalStrict(data, out)
}

// ---------------------------------------------------------------------------
// The fixtures
// ---------------------------------------------------------------------------

// healthTest is one entry of health_test.yaml.
type healthTest struct {
	InputPath string
	// Status must match exactly; Message, when set, too; MessageContains,
	// when set, must be part of the message.
	Status          string
	Message         *string
	MessageContains *string
}

// parseHealthTests reads health_test.yaml: a mapping with the one key tests, a
// list of mappings with exactly inputPath and healthStatus, healthStatus with
// status and optionally message and messageContains, all strings. Any other
// key is an error: a misspelt expectation would otherwise check nothing.
func parseHealthTests(data []byte) ([]healthTest, error) {
	var doc any
	if err := decodeYAML(data, &doc); err != nil {
		return nil, err
	}
	top, ok := doc.(map[string]any)
	if !ok || !hasExactKeys(top, []string{"tests"}, nil) {
		return nil, errors.New("expected a mapping with one key, tests: a list")
	}
	list, ok := top["tests"].([]any)
	if !ok {
		return nil, errors.New("expected a mapping with one key, tests: a list")
	}
	var tests []healthTest
	for i, item := range list {
		where := fmt.Sprintf("test %d", i+1)
		entry, ok := item.(map[string]any)
		if !ok || !hasExactKeys(entry, []string{"inputPath", "healthStatus"}, nil) {
			return nil, fmt.Errorf("%s: expected exactly inputPath and healthStatus", where)
		}
		path, ok := entry["inputPath"].(string)
		if !ok || path == "" {
			return nil, fmt.Errorf("%s: inputPath must be a path", where)
		}
		where = fmt.Sprintf("test %d (%s)", i+1, path)
		want, ok := entry["healthStatus"].(map[string]any)
		if !ok || !hasExactKeys(want, []string{"status"}, []string{"message", "messageContains"}) {
			return nil, fmt.Errorf("%s: healthStatus needs status, and may have message (exact) or messageContains", where)
		}
		test := healthTest{InputPath: path}
		if test.Status, ok = want["status"].(string); !ok {
			return nil, fmt.Errorf("%s: healthStatus.status must be a string", where)
		}
		for key, dst := range map[string]**string{"message": &test.Message, "messageContains": &test.MessageContains} {
			if v, present := want[key]; present {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("%s: healthStatus.%s must be a string", where, key)
				}
				*dst = &s
			}
		}
		tests = append(tests, test)
	}
	return tests, nil
}

// hasExactKeys tells whether m has every key of required, and no key that is
// in neither required nor optional.
func hasExactKeys(m map[string]any, required, optional []string) bool {
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	for k := range m {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// The kinds, as the operator defines them
// ---------------------------------------------------------------------------

// The version of cognitomfa.io that the fixtures are objects of.
const apiVersion = "cognitomfa.io/v1alpha1"

// The kinds the script serves: for each, the source of its Ready reasons
// (the arms of the first `fn as_str(self)` there) and its CRD. A baseline's
// Stalled condition has one reason that is not a Ready reason: Progressing,
// while nothing waits on a person (next in src/status/baseline.rs). A
// policy's Stalled always carries Ready's reason.
var kindSources = map[string]struct {
	ReasonsPath, CRDPath string
	MoreStalledReasons   []string
}{
	"CognitoMfaPolicy":   {"src/status.rs", "crds/cognitomfapolicies.cognitomfa.io.yaml", nil},
	"CognitoMfaBaseline": {"src/status/baseline.rs", "crds/cognitomfabaselines.cognitomfa.io.yaml", []string{"Progressing"}},
}

// kind is what a fixture of one kind is held to.
type kind struct {
	Name           string
	ReadyReasons   []string // sorted
	StalledReasons []string
	Namespaced     bool           // the CRD's scope
	Schema         map[string]any // the CRD's openAPIV3Schema for v1alpha1
}

// operatorReasons are the reasons of the operator's Ready condition: the arms
// `Self::X => "X"` of the first `fn as_str(self)` in source (Reason::as_str in
// src/status.rs, BaselineReason::as_str in src/status/baseline.rs).
func operatorReasons(source string) []string {
	fn := regexp.MustCompile(`(?s)fn as_str\(self\).*?\n    \}\n`).FindString(source)
	var reasons []string
	for _, m := range regexp.MustCompile(`Self::\w+ => "(\w+)"`).FindAllStringSubmatch(fn, -1) {
		if !slices.Contains(reasons, m[1]) {
			reasons = append(reasons, m[1])
		}
	}
	sort.Strings(reasons)
	return reasons
}

// crdKind reads a CRD: it must be the CRD of name in cognitomfa.io, with the
// version of apiVersion.
func crdKind(name string, data []byte) (*kind, error) {
	var crd struct {
		Spec struct {
			Group string
			Names struct{ Kind string }
			Scope string
			// Versions stay generic: the schema is read as decoded.
			Versions []map[string]any
		}
	}
	// Not strict: only a few fields of the CRD matter here.
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return nil, err
	}
	if crd.Spec.Group+"/"+"v1alpha1" != apiVersion || crd.Spec.Names.Kind != name {
		return nil, fmt.Errorf("not the CRD of %s in %s (group %q, kind %q)", name, apiVersion, crd.Spec.Group, crd.Spec.Names.Kind)
	}
	if crd.Spec.Scope != "Namespaced" && crd.Spec.Scope != "Cluster" {
		return nil, fmt.Errorf("scope %q", crd.Spec.Scope)
	}
	for _, v := range crd.Spec.Versions {
		if v["name"] != "v1alpha1" {
			continue
		}
		schema, _ := v["schema"].(map[string]any)
		if s, ok := schema["openAPIV3Schema"].(map[string]any); ok {
			return &kind{Name: name, Namespaced: crd.Spec.Scope == "Namespaced", Schema: s}, nil
		}
	}
	return nil, errors.New("no openAPIV3Schema for v1alpha1")
}

// loadKinds reads every kind of kindSources from the repository.
func loadKinds(t *testing.T, root string) map[string]*kind {
	t.Helper()
	kinds := map[string]*kind{}
	for name, src := range kindSources {
		k, err := crdKind(name, []byte(readFile(t, root, src.CRDPath)))
		if err != nil {
			t.Fatalf("%s: %v", src.CRDPath, err)
		}
		k.ReadyReasons = operatorReasons(readFile(t, root, src.ReasonsPath))
		if len(k.ReadyReasons) == 0 {
			t.Fatalf("no reasons found in %s (as_str moved, or its arms changed shape?)", src.ReasonsPath)
		}
		k.StalledReasons = append(slices.Clone(k.ReadyReasons), src.MoreStalledReasons...)
		kinds[name] = k
	}
	return kinds
}

// ---------------------------------------------------------------------------
// The CRDs' schemas
// ---------------------------------------------------------------------------

// checkSchema checks v against a CRD's structural schema s, for the keywords
// the operator's CRDs use, as the API server would: type, properties (a field
// the schema does not know is an error: the API server would drop it, so
// the operator never writes one), required, nullable, enum, items,
// additionalProperties, x-kubernetes-preserve-unknown-fields, min/maxItems,
// min/maxLength, pattern, format date-time and the list types set and map.
// CEL rules (x-kubernetes-validations) are not evaluated. Each problem is
// appended to errs, with its path.
func checkSchema(path string, v any, s map[string]any, errs *[]string) {
	fail := func(format string, args ...any) {
		where := path
		if where == "" {
			where = "(the object)"
		}
		*errs = append(*errs, where+": "+fmt.Sprintf(format, args...))
	}
	if v == nil {
		if s["nullable"] != true {
			fail("null, which the schema does not allow")
		}
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return e == v }) {
		fail("%#v is not one of %v", v, enum)
	}
	number := func(key string) (int, bool) {
		f, ok := s[key].(float64)
		return int(f), ok
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("%T, not an object", v)
			return
		}
		properties, _ := s["properties"].(map[string]any)
		keys := slices.Sorted(maps.Keys(m))
		for _, k := range keys {
			if p, ok := properties[k].(map[string]any); ok {
				checkSchema(path+"."+k, m[k], p, errs)
			} else if p, ok := s["additionalProperties"].(map[string]any); ok {
				checkSchema(path+"."+k, m[k], p, errs)
			} else if s["x-kubernetes-preserve-unknown-fields"] != true {
				fail("unknown field %q", k)
			}
		}
		required, _ := s["required"].([]any)
		for _, r := range required {
			if _, ok := m[fmt.Sprint(r)]; !ok {
				fail("missing the required field %q", r)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("%T, not an array", v)
			return
		}
		if n, ok := number("minItems"); ok && len(a) < n {
			fail("%d items, fewer than %d", len(a), n)
		}
		if n, ok := number("maxItems"); ok && len(a) > n {
			fail("%d items, more than %d", len(a), n)
		}
		items, _ := s["items"].(map[string]any)
		seen := map[string]bool{}
		for i, item := range a {
			if items != nil {
				checkSchema(fmt.Sprintf("%s[%d]", path, i), item, items, errs)
			}
			var key string
			switch s["x-kubernetes-list-type"] {
			case "set":
				key = fmt.Sprintf("%#v", item)
			case "map":
				keys, _ := s["x-kubernetes-list-map-keys"].([]any)
				for _, k := range keys {
					key += fmt.Sprintf("%#v;", field(item, fmt.Sprint(k)))
				}
			default:
				continue
			}
			if seen[key] {
				fail("item %d repeats an earlier one (x-kubernetes-list-type %v)", i, s["x-kubernetes-list-type"])
			}
			seen[key] = true
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("%T, not a string (quote it)", v)
			return
		}
		length := utf8.RuneCountInString(str)
		if n, ok := number("minLength"); ok && length < n {
			fail("%d characters, fewer than %d", length, n)
		}
		if n, ok := number("maxLength"); ok && length > n {
			fail("%d characters, more than %d", length, n)
		}
		if p, ok := s["pattern"].(string); ok {
			if re, err := regexp.Compile(p); err != nil {
				fail("the schema's pattern does not compile: %v", err)
			} else if !re.MatchString(str) {
				fail("%q does not match %s", str, p)
			}
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				fail("%q is not a date-time: %v", str, err)
			}
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != math.Trunc(f) {
			fail("%#v, not an integer", v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			fail("%#v, not a number", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("%#v, not a boolean (true or false, unquoted)", v)
		}
	}
}

// field is m[key] when m is a mapping, else nil.
func field(m any, key string) any {
	if mm, ok := m.(map[string]any); ok {
		return mm[key]
	}
	return nil
}

// checkObject checks obj against the schema of its kind: apiVersion, kind and
// metadata are the API server's, the rest the CRD's.
func checkObject(obj map[string]any, k *kind) []string {
	var errs []string
	rest := map[string]any{}
	for key, v := range obj {
		switch key {
		case "apiVersion", "kind":
		case "metadata":
			if _, ok := v.(map[string]any); !ok {
				errs = append(errs, "metadata: not a mapping")
			}
		default:
			rest[key] = v
		}
	}
	checkSchema("", rest, k.Schema, &errs)
	return errs
}

// ---------------------------------------------------------------------------
// The fixtures, held to the operator
// ---------------------------------------------------------------------------

// The keys of every condition the operator writes (set_condition in src/status.rs).
var conditionKeys = []string{"lastTransitionTime", "message", "observedGeneration", "reason", "status", "type"}

// checkFixture checks that obj is an object of one of kinds that the
// operator could have written: valid against the kind's CRD (checkObject),
// with metadata.namespace when the kind is namespaced and none when it is
// cluster-scoped, and conditions shaped like the operator's: exactly the keys
// above, status "True", "False" or "Unknown" (a string: an unquoted True is a
// YAML boolean), and for Ready and Stalled one of the kind's reasons. It
// returns the kind and the Ready condition's reason, or "".
func checkFixture(obj map[string]any, kinds map[string]*kind) (k *kind, ready string, err error) {
	name, _ := obj["kind"].(string)
	k, ok := kinds[name]
	if obj["apiVersion"] != apiVersion || !ok {
		return nil, "", fmt.Errorf("not a %s %s", apiVersion, strings.Join(slices.Sorted(maps.Keys(kinds)), " or "))
	}
	if errs := checkObject(obj, k); len(errs) > 0 {
		return nil, "", fmt.Errorf("not valid against the CRD of %s:\n  %s", name, strings.Join(errs, "\n  "))
	}
	namespace, _ := field(obj["metadata"], "namespace").(string)
	if k.Namespaced && namespace == "" {
		return nil, "", fmt.Errorf("%s is namespaced: metadata.namespace is missing", name)
	}
	if !k.Namespaced && field(obj["metadata"], "namespace") != nil {
		return nil, "", fmt.Errorf("%s is cluster-scoped: it has no metadata.namespace", name)
	}
	var conditions []any
	switch status := obj["status"].(type) {
	case nil:
	case map[string]any:
		switch c := status["conditions"].(type) {
		case nil:
		case []any:
			conditions = c
		default:
			return nil, "", errors.New("status.conditions is not a list")
		}
	default:
		return nil, "", errors.New("status is not a mapping")
	}
	for i, item := range conditions {
		c, ok := item.(map[string]any)
		if !ok {
			return nil, "", fmt.Errorf("status.conditions[%d] is not a mapping", i)
		}
		st, _ := c["status"].(string)
		if !hasExactKeys(c, conditionKeys, nil) || !slices.Contains([]string{"True", "False", "Unknown"}, st) {
			return nil, "", fmt.Errorf("condition %v is not shaped like the operator's (%s; status a quoted \"True\"/\"False\"/\"Unknown\")",
				c["type"], strings.Join(conditionKeys, ", "))
		}
		typ, _ := c["type"].(string)
		reason, _ := c["reason"].(string)
		if typ == "Ready" && !slices.Contains(k.ReadyReasons, reason) {
			return nil, "", fmt.Errorf("Ready reason %v is not one of the operator's for %s (%s)", c["reason"], name, kindSources[name].ReasonsPath)
		}
		if typ == "Stalled" && !slices.Contains(k.StalledReasons, reason) {
			return nil, "", fmt.Errorf("Stalled reason %v is not one of the operator's for %s (%s)", c["reason"], name, strings.Join(k.StalledReasons, ", "))
		}
		if typ == "Ready" {
			ready = reason
		}
	}
	return k, ready, nil
}

// loadFixture reads the object of a test and checks it (checkFixture).
func loadFixture(root string, test healthTest, kinds map[string]*kind) (obj map[string]any, k *kind, ready string, err error) {
	path := filepath.Join(filepath.Dir(testsPath), test.InputPath)
	data, err := os.ReadFile(filepath.Join(root, path))
	if err == nil {
		err = decodeYAML(data, &obj)
	}
	if err == nil {
		k, ready, err = checkFixture(obj, kinds)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return obj, k, ready, nil
}

// TestHealthCheck runs health.lua against every fixture of health_test.yaml
// (one subtest each, named by its inputPath), and checks that every Ready
// reason of each kind has a fixture of that kind.
func TestHealthCheck(t *testing.T) {
	root := repoRoot(t)
	script := readFile(t, root, scriptPath)
	kinds := loadKinds(t, root)
	tests, err := parseHealthTests([]byte(readFile(t, root, testsPath)))
	if err != nil {
		t.Fatalf("%s: %v", testsPath, err)
	}

	for _, test := range tests {
		t.Run(test.InputPath, func(t *testing.T) {
			obj, _, _, err := loadFixture(root, test, kinds)
			if err != nil {
				t.Fatal(err)
			}
			got := assessHealth(script, obj)
			if got.Status != test.Status {
				t.Errorf("status %q, want %q (message %q)", got.Status, test.Status, got.Message)
			}
			if test.Message != nil && got.Message != *test.Message {
				t.Errorf("message %q, want %q", got.Message, *test.Message)
			}
			if test.MessageContains != nil && !strings.Contains(got.Message, *test.MessageContains) {
				t.Errorf("message %q does not contain %q", got.Message, *test.MessageContains)
			}
			t.Logf("%s: %s", got.Status, got.Message)
		})
	}

	covered := map[string]map[string]bool{}
	for _, test := range tests {
		// A fixture that does not load fails its own subtest.
		if _, k, ready, err := loadFixture(root, test, kinds); err == nil {
			if covered[k.Name] == nil {
				covered[k.Name] = map[string]bool{}
			}
			covered[k.Name][ready] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(kinds)) {
		k := kinds[name]
		t.Run(fmt.Sprintf("every Ready reason of %s has a fixture", name), func(t *testing.T) {
			var missing []string
			for _, r := range k.ReadyReasons {
				if !covered[name][r] {
					missing = append(missing, r)
				}
			}
			if len(missing) > 0 {
				t.Errorf("no %s in %s has a Ready condition with reason %s (of %d in %s: %s)", name, testsPath,
					strings.Join(missing, ", "), len(k.ReadyReasons), kindSources[name].ReasonsPath, strings.Join(k.ReadyReasons, ", "))
			}
		})
	}
}

// ---------------------------------------------------------------------------
// The copies in the docs
// ---------------------------------------------------------------------------

// healthKey is an argocd-cm key of a health check for a kind of cognitomfa.io.
var healthKey = regexp.MustCompile(`^resource\.customizations\.health\.cognitomfa\.io_(\w+)$`)

// A fence that opens a YAML code block, and its indentation.
var yamlFence = regexp.MustCompile("^(\\s*)```ya?ml\\s*$")

type docCopy struct {
	Line int    // of the opening fence of its code block, counting from 1
	Kind string // of its key
	Text string // the key's value
}

// docCopies returns the value of every health check key (healthKey) in the
// YAML code blocks of doc, as a YAML reader gets it: block scalars with their
// indentation and chomping, anchors and aliases expanded. Keys are found at
// any depth: argocd-cm's data, or configs.cm of Argo CD's Helm values. A
// block that has such a key but is not YAML, or a key whose value is not a
// string, is an error.
func docCopies(doc string) ([]docCopy, error) {
	lines := strings.Split(doc, "\n")
	var copies []docCopy
	for n := 0; n < len(lines); n++ {
		m := yamlFence.FindStringSubmatch(lines[n])
		if m == nil {
			continue
		}
		start, indent := n+1, m[1]
		var block strings.Builder
		for n++; n < len(lines) && strings.TrimSpace(lines[n]) != "```"; n++ {
			block.WriteString(strings.TrimPrefix(lines[n], indent))
			block.WriteString("\n")
		}
		if !strings.Contains(block.String(), "resource.customizations.health.cognitomfa.io_") {
			continue
		}
		var v any
		if err := decodeYAML([]byte(block.String()), &v); err != nil {
			return nil, fmt.Errorf("the code block at line %d: %w", start, err)
		}
		var walk func(v any) error
		walk = func(v any) error {
			switch v := v.(type) {
			case map[string]any:
				for _, key := range slices.Sorted(maps.Keys(v)) {
					if m := healthKey.FindStringSubmatch(key); m != nil {
						text, ok := v[key].(string)
						if !ok {
							return fmt.Errorf("the code block at line %d: %s is not a string", start, key)
						}
						copies = append(copies, docCopy{Line: start, Kind: m[1], Text: text})
					} else if err := walk(v[key]); err != nil {
						return err
					}
				}
			case []any:
				for _, item := range v {
					if err := walk(item); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if err := walk(v); err != nil {
			return nil, err
		}
	}
	return copies, nil
}

// firstDifference describes the first line where two texts differ.
func firstDifference(doc, file string) string {
	docLines, fileLines := strings.Split(doc, "\n"), strings.Split(file, "\n")
	n := 0
	for n < len(docLines) && n < len(fileLines) && docLines[n] == fileLines[n] {
		n++
	}
	lineAt := func(lines []string) string {
		if n < len(lines) {
			return fmt.Sprintf("%q", lines[n])
		}
		return "(end)"
	}
	return fmt.Sprintf("line %d of the script: the doc has %s, the file has %s", n+1, lineAt(docLines), lineAt(fileLines))
}

// TestDocsCopies checks that every copy of the script in docs/argocd.md is
// the file, byte for byte, that each is under the key of a kind the script
// serves, and that each kind has one.
func TestDocsCopies(t *testing.T) {
	root := repoRoot(t)
	script := readFile(t, root, scriptPath)
	copies, err := docCopies(readFile(t, root, docPath))
	if err != nil {
		t.Fatalf("%s: %v", docPath, err)
	}
	for _, c := range copies {
		t.Run(fmt.Sprintf("%s:%d %s", docPath, c.Line, c.Kind), func(t *testing.T) {
			if _, ok := kindSources[c.Kind]; !ok {
				t.Errorf("the key of a kind the script does not serve: %s", c.Kind)
			}
			if c.Text != script {
				t.Errorf("not a copy of %s: %s", scriptPath, firstDifference(c.Text, script))
			}
		})
	}
	for _, name := range slices.Sorted(maps.Keys(kindSources)) {
		if !slices.ContainsFunc(copies, func(c docCopy) bool { return c.Kind == name }) {
			t.Errorf("%s has no copy of the script under resource.customizations.health.cognitomfa.io_%s in a YAML code block", docPath, name)
		}
	}
}

// ---------------------------------------------------------------------------
// The sandbox, and the checks' own parts
// ---------------------------------------------------------------------------

// TestSandbox shows that the state is cut down as Argo CD's is, and that its
// return values are read by Argo CD's rules, with scripts that Argo CD would
// fail (or read) the same way.
func TestSandbox(t *testing.T) {
	obj := map[string]any{"metadata": map[string]any{"name": "x", "generation": int64(3)}}
	cases := []struct {
		name, script string
		want         healthStatus
		contains     bool // want.Message is a part of the message
	}{
		{"no string library", `return { status = string.find("ab", "b") and "Healthy" or "Degraded" }`,
			healthStatus{"Unknown", "attempt to index a non-table object(nil) with key 'find'"}, true},
		{"no string methods", `local s = "ab" return { status = s:sub(1, 1) }`,
			healthStatus{"Unknown", "attempt to index a non-table object(string) with key 'sub'"}, true},
		{"no math library", `return { status = "Healthy", message = "" .. math.floor(1.5) }`,
			healthStatus{"Unknown", "attempt to index a non-table object(nil) with key 'floor'"}, true},
		{"no global os", `return { status = "Healthy", message = "" .. os.time() }`,
			healthStatus{"Unknown", "attempt to index a non-table object(nil) with key 'time'"}, true},
		{"what there is", `
			local names = {}
			for k in pairs(require("os")) do table.insert(names, k) end
			table.sort(names)
			local absent = {}
			for _, lib in ipairs({ "string", "math", "io", "os", "debug", "coroutine", "channel" }) do
				if _G[lib] == nil then table.insert(absent, lib) end
			end
			return { status = "Healthy", message = "os: " .. table.concat(names, ",") .. " " .. type(require("os").time())
				.. "; absent: " .. table.concat(absent, ",") .. "; " .. obj.metadata.name .. " " .. obj.metadata.generation }`,
			healthStatus{"Healthy", "os: date,time number; absent: string,math,io,os,debug,coroutine,channel; x 3"}, false},
		{"a script that never ends", `while true do end`,
			healthStatus{"Unknown", "context deadline exceeded"}, true},
		{"a syntax error", `return {`,
			healthStatus{"Unknown", "<string>"}, true},
		{"a status Argo CD does not know", `return { status = "Fine" }`,
			healthStatus{"Unknown", "Lua returned an invalid health status"}, false},
		{"not a table", `return "Healthy"`,
			healthStatus{"Unknown", "expect table output from Lua script, not string"}, false},
		{"a message that is not a string", `return { status = "Healthy", message = 3 }`,
			healthStatus{}, false},
		{"an empty table", `return {}`, healthStatus{}, false},
		{"nothing", `local hs = {}`, healthStatus{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			got := assessHealth(c.script, obj)
			elapsed := time.Since(start)
			t.Logf("%s after %v: %s", got.Status, elapsed.Round(time.Millisecond), got.Message)
			ok := got.Status == c.want.Status && (got.Message == c.want.Message ||
				c.contains && strings.Contains(got.Message, c.want.Message))
			if !ok {
				t.Errorf("got %+v, want %+v (message %s)", got, c.want, map[bool]string{true: "containing", false: "exactly"}[c.contains])
			}
			if c.name == "a script that never ends" && elapsed < luaTimeout*9/10 {
				t.Errorf("stopped after %v, before the %v timeout", elapsed, luaTimeout)
			}
		})
	}
}

// TestStrictFormat shows that the fixtures' format is checked: misspelt or
// missing keys and duplicate keys are errors, timestamps stay strings, and a
// condition not shaped like the operator's is refused.
func TestStrictFormat(t *testing.T) {
	entry := "tests:\n- inputPath: testdata/a.yaml\n  healthStatus:\n"
	bad := map[string]string{
		"a misspelt expectation":         entry + "    status: Healthy\n    messageContain: x\n",
		"no status":                      entry + "    message: x\n",
		"a key too many":                 entry + "    status: Healthy\n  note: x\n",
		"a duplicate key":                entry + "    status: Healthy\n    status: Degraded\n",
		"a second top-level key":         entry + "    status: Healthy\nmore: 1\n",
		"a message that is not a string": entry + "    status: Healthy\n    message: 3\n",
		"no tests":                       "test: []\n",
	}
	for name, doc := range bad {
		t.Run(name, func(t *testing.T) {
			if tests, err := parseHealthTests([]byte(doc)); err == nil {
				t.Errorf("accepted: %+v", tests)
			}
		})
	}
	t.Run("a good one", func(t *testing.T) {
		tests, err := parseHealthTests([]byte(entry + "    status: Healthy\n    messageContains: x\n"))
		if err != nil || len(tests) != 1 || tests[0].Status != "Healthy" || tests[0].Message != nil || *tests[0].MessageContains != "x" {
			t.Errorf("got %+v, %v", tests, err)
		}
	})

	t.Run("timestamps stay strings", func(t *testing.T) {
		var obj map[string]any
		if err := decodeYAML([]byte("t: 2025-05-20T09:12:46Z\nd: 2025-05-20\n"), &obj); err != nil {
			t.Fatal(err)
		}
		if obj["t"] != "2025-05-20T09:12:46Z" || obj["d"] != "2025-05-20" {
			t.Errorf("got %#v", obj)
		}
	})

	open := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	kinds := map[string]*kind{
		"CognitoMfaPolicy": {Name: "CognitoMfaPolicy", ReadyReasons: []string{"InSync"},
			StalledReasons: []string{"InSync"}, Namespaced: true, Schema: open},
		"CognitoMfaBaseline": {Name: "CognitoMfaBaseline", ReadyReasons: []string{"Compliant"},
			StalledReasons: []string{"Compliant", "Progressing"}, Schema: open},
	}
	cond := func(typ, reason, status string) string {
		return "  - type: " + typ + "\n    lastTransitionTime: 2025-05-20T09:12:46Z\n    message: m\n    observedGeneration: 1\n" +
			"    reason: " + reason + "\n    status: " + status + "\n"
	}
	policy := "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaPolicy\nmetadata:\n  namespace: identity\nstatus:\n  conditions:\n"
	baseline := "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaBaseline\nmetadata:\n  name: floor\nstatus:\n  conditions:\n"
	// A schema that knows status.conditions, and nothing else of status.
	strict := map[string]*kind{}
	for name, k := range kinds {
		s := *k
		s.Schema = map[string]any{"type": "object", "properties": map[string]any{
			"metadata": open,
			"status": map[string]any{"type": "object", "properties": map[string]any{
				"conditions": map[string]any{"type": "array"}}}}}
		strict[name] = &s
	}
	fixtures := map[string]struct {
		doc, err string
		kinds    map[string]*kind
	}{
		"an unquoted True":      {policy + cond("Ready", "InSync", "True"), "not shaped like the operator's", kinds},
		"a key too many":        {policy + cond("Ready", "InSync", `"True"`) + "    extra: x\n", "not shaped like the operator's", kinds},
		"an unknown reason":     {policy + cond("Ready", "AllGood", `"True"`), "Ready reason AllGood", kinds},
		"another kind's reason": {policy + cond("Ready", "Compliant", `"True"`), "Ready reason Compliant", kinds},
		"a Stalled reason of baselines only": {policy + cond("Ready", "InSync", `"True"`) + cond("Stalled", "Progressing", `"False"`),
			"Stalled reason Progressing", kinds},
		"another kind":                  {"apiVersion: v1\nkind: ConfigMap\n", "not a cognitomfa.io/v1alpha1", kinds},
		"another version":               {strings.Replace(policy, "v1alpha1", "v1", 1), "not a cognitomfa.io/v1alpha1", kinds},
		"conditions not list":           {strings.TrimSuffix(policy, "\n") + " {}\n", "status.conditions is not a list", kinds},
		"a policy without a namespace":  {strings.Replace(policy, "namespace: identity", "name: p", 1), "metadata.namespace is missing", kinds},
		"a baseline with a namespace":   {strings.Replace(baseline, "name: floor", "namespace: identity", 1), "cluster-scoped", kinds},
		"a field the CRD does not know": {policy + cond("Ready", "InSync", `"True"`) + "  phase: Ready\n", `.status: unknown field "phase"`, strict},
	}
	for name, f := range fixtures {
		t.Run("fixture with "+name, func(t *testing.T) {
			var obj map[string]any
			if err := decodeYAML([]byte(f.doc), &obj); err != nil {
				t.Fatal(err)
			}
			if _, _, err := checkFixture(obj, f.kinds); err == nil || !strings.Contains(err.Error(), f.err) {
				t.Errorf("got error %v, want one with %q", err, f.err)
			}
		})
	}
	good := map[string]struct{ doc, kind, ready string }{
		"a policy":   {policy + cond("Ready", "InSync", `"True"`) + cond("Stalled", "InSync", `"False"`), "CognitoMfaPolicy", "InSync"},
		"a baseline": {baseline + cond("Ready", "Compliant", `"True"`) + cond("Stalled", "Progressing", `"False"`), "CognitoMfaBaseline", "Compliant"},
	}
	for name, g := range good {
		t.Run(name+" shaped like the operator's", func(t *testing.T) {
			var obj map[string]any
			if err := decodeYAML([]byte(g.doc), &obj); err != nil {
				t.Fatal(err)
			}
			if k, ready, err := checkFixture(obj, kinds); err != nil || k.Name != g.kind || ready != g.ready {
				t.Errorf("got %v, %q, %v", k, ready, err)
			}
		})
	}

	t.Run("the schema", func(t *testing.T) {
		var schema map[string]any
		err := decodeYAML([]byte(`
type: object
required: [spec]
properties:
  spec:
    type: object
    required: [regions]
    properties:
      regions:
        type: array
        minItems: 1
        maxItems: 2
        x-kubernetes-list-type: set
        items: {type: string, pattern: "^[a-z]{2}(-[a-z]+)+-[0-9]+$"}
      action: {type: string, enum: [Report, Enforce]}
      name: {type: string, nullable: true, minLength: 2, maxLength: 3}
      count: {type: integer}
      enabled: {type: boolean}
      at: {type: string, format: date-time}
      labels: {type: object, additionalProperties: {type: string}}
      extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
      conditions:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [type]
        items: {type: object, properties: {type: {type: string}, status: {type: string}}}
`), &schema)
		if err != nil {
			t.Fatal(err)
		}
		valid := "spec:\n  regions: [eu-west-1, us-east-1]\n  action: Enforce\n  name: null\n  count: 3\n  enabled: true\n" +
			"  at: 2025-05-20T09:12:46Z\n  labels: {a: b}\n  extra: {anything: [1]}\n  conditions: [{type: Ready}, {type: Synced}]\n"
		check := func(doc string) []string {
			var v any
			if err := decodeYAML([]byte(doc), &v); err != nil {
				t.Fatal(err)
			}
			var errs []string
			checkSchema("", v, schema, &errs)
			return errs
		}
		if errs := check(valid); len(errs) != 0 {
			t.Errorf("valid: got %v", errs)
		}
		bad := map[string]struct{ replace, with, err string }{
			"an unknown field":              {"  enabled: true\n", "  enabled: true\n  disabled: true\n", `.spec: unknown field "disabled"`},
			"a missing required field":      {"  regions: [eu-west-1, us-east-1]\n", "", `.spec: missing the required field "regions"`},
			"a value not in the enum":       {"Enforce", "Audit", `.spec.action: "Audit" is not one of`},
			"null where it is not nullable": {"action: Enforce", "action: null", ".spec.action: null"},
			"too long":                      {"name: null", "name: abcd", ".spec.name: 4 characters, more than 3"},
			"too short":                     {"name: null", "name: a", ".spec.name: 1 characters, fewer than 2"},
			"too many items":                {"[eu-west-1, us-east-1]", "[eu-west-1, us-east-1, us-west-2]", ".spec.regions: 3 items, more than 2"},
			"no items":                      {"[eu-west-1, us-east-1]", "[]", ".spec.regions: 0 items, fewer than 1"},
			"a pattern not matched":         {"us-east-1]", "Ireland]", `.spec.regions[1]: "Ireland" does not match`},
			"a set with a repeat":           {"[eu-west-1, us-east-1]", "[eu-west-1, eu-west-1]", ".spec.regions: item 1 repeats"},
			"a map list with a repeat":      {"{type: Synced}", "{type: Ready, status: x}", ".spec.conditions: item 1 repeats"},
			"not an integer":                {"count: 3", "count: 3.5", ".spec.count: 3.5, not an integer"},
			"a quoted boolean":              {"enabled: true", `enabled: "true"`, ".spec.enabled: \"true\", not a boolean"},
			"not a date-time":               {"at: 2025-05-20T09:12:46Z", "at: 2025-05-20", ".spec.at: \"2025-05-20\" is not a date-time"},
			"a map value of a wrong type":   {"{a: b}", "{a: 1}", ".spec.labels.a: float64, not a string"},
			"not an object":                 {"spec:\n", "spec: 1\nx:\n", ".spec: float64, not an object"},
		}
		for name, b := range bad {
			doc := strings.Replace(valid, b.replace, b.with, 1)
			if doc == valid {
				t.Fatalf("%s: %q is not in the valid document", name, b.replace)
			}
			errs := check(doc)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, b.err) }) {
				t.Errorf("%s: got %q, want an error with %q", name, errs, b.err)
			}
		}
	})

	t.Run("a CRD of another kind", func(t *testing.T) {
		crd := "spec:\n  group: cognitomfa.io\n  names: {kind: CognitoMfaPolicy}\n  scope: Namespaced\n" +
			"  versions:\n  - name: v1alpha1\n    schema:\n      openAPIV3Schema: {type: object}\n"
		if k, err := crdKind("CognitoMfaPolicy", []byte(crd)); err != nil || !k.Namespaced {
			t.Errorf("the right kind: got %+v, %v", k, err)
		}
		if _, err := crdKind("CognitoMfaBaseline", []byte(crd)); err == nil {
			t.Error("accepted the CRD of CognitoMfaPolicy for CognitoMfaBaseline")
		}
		if _, err := crdKind("CognitoMfaPolicy", []byte(strings.Replace(crd, "v1alpha1", "v1", 1))); err == nil {
			t.Error("accepted a CRD without v1alpha1")
		}
	})

	t.Run("reasons from as_str", func(t *testing.T) {
		src := "impl Reason {\n    pub fn as_str(self) -> &'static str {\n        match self {\n" +
			"            Self::B => \"B\",\n            Self::A => \"A\",\n        }\n    }\n\n    fn other() { Self::C => \"C\" }\n"
		if got := operatorReasons(src); !slices.Equal(got, []string{"A", "B"}) {
			t.Errorf("got %v", got)
		}
		if got := operatorReasons("fn nothing() {}\n"); len(got) != 0 {
			t.Errorf("got %v", got)
		}
	})

	t.Run("copies in the docs", func(t *testing.T) {
		const key = "resource.customizations.health.cognitomfa.io_"
		doc := "text\n```yaml\nx:\n  " + key + "CognitoMfaPolicy: &h |\n    a\n\n      b\n\n  " + key + "CognitoMfaBaseline: *h\n  other: 1\n```\n" +
			"\n  ```yaml\n  configs:\n    cm:\n      " + key + "CognitoMfaPolicy: |\n        c\n  ```\n" +
			"```sh\n" + key + "CognitoMfaPolicy=file\n```\n```yaml\nno: key\n```\n"
		got, err := docCopies(doc)
		want := []docCopy{
			{2, "CognitoMfaBaseline", "a\n\n  b\n"},
			{2, "CognitoMfaPolicy", "a\n\n  b\n"},
			{13, "CognitoMfaPolicy", "c\n"},
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("got %+v, %v; want %+v", got, err, want)
		}
		for name, doc := range map[string]string{
			"not YAML":         "```yaml\n" + key + "CognitoMfaPolicy: |\n a\nb: [\n```\n",
			"not a string":     "```yaml\n" + key + "CognitoMfaPolicy: {a: 1}\n```\n",
			"a duplicated key": "```yaml\n" + key + "CognitoMfaPolicy: a\n" + key + "CognitoMfaPolicy: b\n```\n",
		} {
			if got, err := docCopies(doc); err == nil {
				t.Errorf("%s: accepted: %+v", name, got)
			}
		}
	})
}
