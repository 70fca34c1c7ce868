// Tests of the Argo CD health check for CognitoMfaPolicy,
// charts/cognito-mfa-operator/argocd/health.lua.
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
// to the operator: their conditions must be shaped like those src/status.rs
// writes, with its reasons, and every Ready reason of the operator must have a
// fixture. TestDocsCopies checks that each copy of the script in
// docs/argocd.md is the file, byte for byte. TestSandbox shows that the state
// is as strict as Argo CD's: a script that needs the string or math library,
// or never ends, fails here as it fails there.
//
// Run from this directory: go test ./...
package argocd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

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

// operatorReasons are the reasons of the operator's Ready condition: the arms
// `Self::X => "X"` of Reason::as_str in src/status.rs.
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

// The keys of every condition the operator writes (src/status.rs).
var conditionKeys = []string{"lastTransitionTime", "message", "observedGeneration", "reason", "status", "type"}

// checkFixture checks that obj is a CognitoMfaPolicy whose conditions are
// shaped like the operator's: exactly the keys above, status "True", "False"
// or "Unknown" (a string: an unquoted True is a YAML boolean), and for Ready
// and Stalled one of the operator's reasons. It returns the Ready condition's
// reason, or "".
func checkFixture(obj map[string]any, reasons []string) (string, error) {
	if obj["apiVersion"] != "cognitomfa.io/v1alpha1" || obj["kind"] != "CognitoMfaPolicy" {
		return "", errors.New("not a cognitomfa.io/v1alpha1 CognitoMfaPolicy")
	}
	var status map[string]any
	switch s := obj["status"].(type) {
	case nil:
	case map[string]any:
		status = s
	default:
		return "", errors.New("status is not a mapping")
	}
	var conditions []any
	switch c := status["conditions"].(type) {
	case nil:
	case []any:
		conditions = c
	default:
		return "", errors.New("status.conditions is not a list")
	}
	ready := ""
	for i, item := range conditions {
		c, ok := item.(map[string]any)
		if !ok {
			return "", fmt.Errorf("status.conditions[%d] is not a mapping", i)
		}
		st, _ := c["status"].(string)
		if !hasExactKeys(c, conditionKeys, nil) || !slices.Contains([]string{"True", "False", "Unknown"}, st) {
			return "", fmt.Errorf("condition %v is not shaped like the operator's (%s; status a quoted \"True\"/\"False\"/\"Unknown\")",
				c["type"], strings.Join(conditionKeys, ", "))
		}
		typ, _ := c["type"].(string)
		reason, _ := c["reason"].(string)
		if (typ == "Ready" || typ == "Stalled") && !slices.Contains(reasons, reason) {
			return "", fmt.Errorf("%s reason %v is not one of the operator's (%s)", typ, c["reason"], reasonsPath)
		}
		if typ == "Ready" {
			ready = reason
		}
	}
	return ready, nil
}

// loadFixture reads the object of a test and checks it (checkFixture).
func loadFixture(root string, test healthTest, reasons []string) (obj map[string]any, ready string, err error) {
	path := filepath.Join(filepath.Dir(testsPath), test.InputPath)
	data, err := os.ReadFile(filepath.Join(root, path))
	if err == nil {
		err = decodeYAML(data, &obj)
	}
	if err == nil {
		ready, err = checkFixture(obj, reasons)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return obj, ready, nil
}

// TestHealthCheck runs health.lua against every fixture of health_test.yaml
// (one subtest each, named by its inputPath), and checks that every Ready
// reason of the operator has a fixture.
func TestHealthCheck(t *testing.T) {
	root := repoRoot(t)
	script := readFile(t, root, scriptPath)
	reasons := operatorReasons(readFile(t, root, reasonsPath))
	if len(reasons) == 0 {
		t.Fatalf("no reasons found in %s (Reason::as_str moved, or its arms changed shape?)", reasonsPath)
	}
	tests, err := parseHealthTests([]byte(readFile(t, root, testsPath)))
	if err != nil {
		t.Fatalf("%s: %v", testsPath, err)
	}

	for _, test := range tests {
		t.Run(test.InputPath, func(t *testing.T) {
			obj, _, err := loadFixture(root, test, reasons)
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

	t.Run(fmt.Sprintf("every Ready reason of %s has a fixture", reasonsPath), func(t *testing.T) {
		covered := map[string]bool{}
		for _, test := range tests {
			// A fixture that does not load fails its own subtest.
			if _, ready, err := loadFixture(root, test, reasons); err == nil {
				covered[ready] = true
			}
		}
		var missing []string
		for _, r := range reasons {
			if !covered[r] {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			t.Errorf("no fixture in %s has a Ready condition with reason %s (of %d: %s)",
				testsPath, strings.Join(missing, ", "), len(reasons), strings.Join(reasons, ", "))
		}
	})
}

// ---------------------------------------------------------------------------
// The copies in the docs
// ---------------------------------------------------------------------------

// argocdCmKey is the line that opens a copy of the script in the docs: the
// argocd-cm key, with a literal block.
var argocdCmKey = regexp.MustCompile(`^(\s*)resource\.customizations\.health\.cognitomfa\.io_CognitoMfaPolicy: \|\s*$`)

type docCopy struct {
	Line int // of the key, counting from 1
	Text string
}

func indentOf(line string) int {
	return len(line) - len(strings.TrimLeftFunc(line, unicode.IsSpace))
}

func isBlank(line string) bool {
	return strings.TrimSpace(line) == ""
}

// docCopies returns the block under each argocd-cm key in doc, as YAML reads
// it: the lines indented deeper than the key, less their common indentation,
// trailing blank lines dropped and one final newline kept (clip chomping).
func docCopies(doc string) []docCopy {
	lines := strings.Split(doc, "\n")
	var copies []docCopy
	for n, line := range lines {
		m := argocdCmKey.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		keyIndent := len(m[1])
		var block []string
		for _, body := range lines[n+1:] {
			if !isBlank(body) && indentOf(body) <= keyIndent {
				break
			}
			block = append(block, body)
		}
		for len(block) > 0 && isBlank(block[len(block)-1]) {
			block = block[:len(block)-1]
		}
		indent := -1
		for _, b := range block {
			if !isBlank(b) && (indent < 0 || indentOf(b) < indent) {
				indent = indentOf(b)
			}
		}
		indent = max(indent, 0)
		var text strings.Builder
		for _, b := range block {
			text.WriteString(b[min(indent, len(b)):])
			text.WriteString("\n")
		}
		if len(block) == 0 {
			text.WriteString("\n")
		}
		copies = append(copies, docCopy{Line: n + 1, Text: text.String()})
	}
	return copies
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
// the file, byte for byte, and that there is at least one.
func TestDocsCopies(t *testing.T) {
	root := repoRoot(t)
	script := readFile(t, root, scriptPath)
	copies := docCopies(readFile(t, root, docPath))
	if len(copies) == 0 {
		t.Fatalf("%s has no copy of the script under the argocd-cm key", docPath)
	}
	for _, c := range copies {
		t.Run(fmt.Sprintf("%s:%d", docPath, c.Line), func(t *testing.T) {
			if c.Text != script {
				t.Errorf("not a copy of %s: %s", scriptPath, firstDifference(c.Text, script))
			}
		})
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

	reasons := []string{"InSync"}
	condition := "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaPolicy\nstatus:\n  conditions:\n  - type: Ready\n" +
		"    lastTransitionTime: 2025-05-20T09:12:46Z\n    message: m\n    observedGeneration: 1\n"
	fixtures := map[string]string{
		"an unquoted True":    condition + "    reason: InSync\n    status: True\n",
		"a key too many":      condition + "    reason: InSync\n    status: \"True\"\n    extra: x\n",
		"an unknown reason":   condition + "    reason: AllGood\n    status: \"True\"\n",
		"another kind":        "apiVersion: v1\nkind: ConfigMap\n",
		"conditions not list": "apiVersion: cognitomfa.io/v1alpha1\nkind: CognitoMfaPolicy\nstatus:\n  conditions: {}\n",
	}
	for name, doc := range fixtures {
		t.Run("fixture with "+name, func(t *testing.T) {
			var obj map[string]any
			if err := decodeYAML([]byte(doc), &obj); err != nil {
				t.Fatal(err)
			}
			if _, err := checkFixture(obj, reasons); err == nil {
				t.Error("accepted")
			}
		})
	}
	t.Run("a fixture shaped like the operator's", func(t *testing.T) {
		var obj map[string]any
		if err := decodeYAML([]byte(condition+"    reason: InSync\n    status: \"True\"\n"), &obj); err != nil {
			t.Fatal(err)
		}
		if ready, err := checkFixture(obj, reasons); err != nil || ready != "InSync" {
			t.Errorf("got %q, %v", ready, err)
		}
	})

	t.Run("reasons from Reason::as_str", func(t *testing.T) {
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
		doc := "x:\n  resource.customizations.health.cognitomfa.io_CognitoMfaPolicy: |\n    a\n\n      b\n\n  other: 1\n"
		got := docCopies(doc)
		if len(got) != 1 || got[0].Line != 2 || got[0].Text != "a\n\n  b\n" {
			t.Errorf("got %+v", got)
		}
	})
}
