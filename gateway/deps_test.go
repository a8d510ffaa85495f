package gateway_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// module is this repository's module path.
const module = "github.com/edgegw/edgegw"

// policy says which project packages each project package may import, in
// the spirit of go/build/deps_test.go. A rule's key is a package path
// relative to the module, or a prefix ending in "/..."; the most specific
// key wins. The value lists the allowed imports with the same syntax. The
// rules apply to the transitive imports of non-test code and to the direct
// imports of test code.
var policy = []struct {
	pkg   string
	allow []string
}{
	// Leaves: no project package at all.
	{"buffer", nil},
	{"mqtt/packet", nil},
	{"mqtt/topic", nil},
	{"drivers", nil},
	// Capped, doubling, jittered retry delays for drivers and gateway
	// alike (mqtt/client keeps its own reconnect policy).
	{"drivers/backoff", nil},
	{"drivers/bus", []string{"drivers/backoff"}},
	// Transports own their bus through the one shared scheduler.
	{"drivers/i2c", []string{"drivers/bus", "drivers/backoff"}},
	{"drivers/serial", []string{"drivers/bus", "drivers/backoff"}},
	{"drivers/modbus", []string{"drivers/bus", "drivers/backoff"}},
	{"drivers/gpio", []string{"drivers/bus", "drivers/backoff"}},

	// Each tree knows only itself (fakes like modbustest sit inside it).
	{"buffer/...", []string{"buffer/..."}},
	{"mqtt/...", []string{"mqtt/..."}},
	{"drivers/...", []string{"drivers/..."}},

	// The gateway consumes interfaces: never a transport, a model, the
	// queue, the broker, the uplink client or the config.
	{"gateway", []string{"drivers", "mqtt/topic", "gateway/internal/atomicfile"}},
	// Small leaves that several trees write the same way with.
	{"gateway/internal/atomicfile", nil},
	{"gateway/config", []string{"drivers", "mqtt/topic"}},
	// The devices' supervisor takes plain options (the daemon turns the
	// config into them) and feeds the gateway through an interface of its
	// own: drivers, the poll loop and the backoff only.
	{"gateway/supervisor", []string{"drivers", "drivers/poll", "drivers/backoff"}},
	{"gateway/daemon", []string{"..."}},
	// The console reads the gateway's topics and types; the daemon hands
	// it everything else as plain values and funcs.
	{"gateway/console", []string{"gateway", "gateway/internal/atomicfile", "drivers", "mqtt/topic"}},
	{"gateway/...", []string{"gateway/...", "drivers/...", "mqtt/...", "buffer/..."}},
	{"cmd/...", []string{"..."}},
}

func allowed(list []string, path string) bool {
	for _, a := range list {
		if matchRule(a, path) {
			return true
		}
	}
	return false
}

func matchRule(rule, path string) bool {
	if rule == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(rule, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return rule == path
}

// ruleFor returns the most specific rule for pkg.
func ruleFor(pkg string) (allow []string, ok bool) {
	best := -1
	for _, r := range policy {
		if !matchRule(r.pkg, pkg) {
			continue
		}
		spec := len(r.pkg)
		if !strings.HasSuffix(r.pkg, "/...") {
			spec += 1000 // an exact rule beats any prefix rule
		}
		if spec > best {
			best, allow, ok = spec, r.allow, true
		}
	}
	return allow, ok
}

func TestImportPolicy(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	// One line per package: path, then "|" transitive deps, then "|" test imports.
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Deps " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`,
		module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "|", 3)
		if len(parts) != 3 {
			t.Fatalf("unexpected go list line %q", sc.Text())
		}
		pkg, ok := strings.CutPrefix(parts[0], module+"/")
		if !ok {
			continue
		}
		seen++
		allow, ok := ruleFor(pkg)
		if !ok {
			t.Errorf("%s: no import rule; add one to policy", pkg)
			continue
		}
		check := func(kind, list string) {
			for _, imp := range strings.Fields(list) {
				rel, ok := strings.CutPrefix(imp, module+"/")
				if !ok || rel == pkg {
					continue
				}
				if matchRule("cmd/...", rel) {
					t.Errorf("%s %s %s: nothing may import cmd", pkg, kind, rel)
					continue
				}
				if !allowed(allow, rel) {
					t.Errorf("%s %s %s: not allowed by the import policy", pkg, kind, rel)
				}
			}
		}
		check("depends on", parts[1])
		check("test imports", parts[2])
	}
	if seen == 0 {
		t.Fatal("go list returned no project package")
	}
}

func TestRuleFor(t *testing.T) {
	tests := []struct {
		pkg, imp string
		want     bool
	}{
		{"buffer", "mqtt/packet", false},
		{"mqtt/broker", "mqtt/packet", true},
		{"mqtt/broker", "buffer", false},
		{"mqtt/packet", "mqtt/topic", false},
		{"drivers/modbus", "drivers", false},
		{"drivers/sht4x", "drivers/i2c", true},
		{"drivers/sht4x", "mqtt/topic", false},
		{"gateway", "buffer", false},
		{"gateway", "drivers", true},
		{"gateway", "gateway/config", false},
		{"gateway/daemon", "buffer", true},
		{"gateway/uplink/fleet", "gateway/uplink", true},
		{"gateway/console", "gateway", true},
		{"gateway/console", "mqtt/broker", false},
		{"gateway/console", "gateway/config", false},
		{"gateway/supervisor", "drivers/poll", true},
		{"gateway/supervisor", "gateway", false},
		{"gateway/supervisor", "gateway/config", false},
		{"gateway/supervisor", "drivers/modbus", false},
		{"drivers/bus", "drivers/backoff", true},
		{"drivers/backoff", "drivers", false},
	}
	for _, tt := range tests {
		allow, ok := ruleFor(tt.pkg)
		if got := ok && allowed(allow, tt.imp); got != tt.want {
			t.Errorf("%s imports %s: allowed = %v, want %v", tt.pkg, tt.imp, got, tt.want)
		}
	}
}
