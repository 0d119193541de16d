package lock

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompareNames(t *testing.T) {
	t.Parallel()
	got := []string{"stock:B", "portfolio:42-x", "portfolio:42/position:AAPL", "stock:A", "portfolio:42", "portfolio:4", "portfolio:42/position:AAPL/lot:1"}
	slices.SortFunc(got, compareNames)
	// Parents right before their children, even where '-' sorts before '/'.
	want := []string{"portfolio:4", "portfolio:42", "portfolio:42/position:AAPL", "portfolio:42/position:AAPL/lot:1", "portfolio:42-x", "stock:A", "stock:B"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sorted names mismatch (-want +got):\n%s", diff)
	}
}

func TestSteps(t *testing.T) {
	t.Parallel()
	type call struct {
		Resource  string
		Tree      bool
		Exclusive bool
	}
	tests := []struct {
		name string
		mode Mode
		want []call
	}{
		{"a", Read, []call{{"a", true, false}, {"a", false, false}}},
		{"a", Write, []call{{"a", true, false}, {"a", false, true}}},
		{"a", Exclusive, []call{{"a", true, true}}},
		{"a/b/c", Write, []call{{"a", true, false}, {"a/b", true, false}, {"a/b/c", true, false}, {"a/b/c", false, true}}},
		{"a/b", Exclusive, []call{{"a", true, false}, {"a/b", true, true}}},
	}
	sp := newSpace("stock")
	for _, tt := range tests {
		var got []call
		for _, s := range sp.steps(tt.name, tt.mode) {
			if uint64(s.key)>>40 != keyTag<<16|namespaceID("stock") {
				t.Errorf("steps(%q): key %#x lacks the tag and namespace id", tt.name, s.key)
			}
			if uint64(s.key)&^1 != sp.baseKey(s.resource) {
				t.Errorf("steps(%q): key %#x is not %q's", tt.name, s.key, s.resource)
			}
			got = append(got, call{s.resource, s.key&1 == kindTree, s.exclusive})
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("steps(%q, %v) mismatch (-want +got):\n%s", tt.name, tt.mode, diff)
		}
	}
}

// TestNamespaceIDs: the fleet's services, which may share a database, have namespaces of
// different ids, so their keys never meet; the same name gets other keys in each.
func TestNamespaceIDs(t *testing.T) {
	t.Parallel()
	seen := map[uint64]string{}
	for _, ns := range []string{"stock", "portfolio", "interview"} {
		id := namespaceID(ns)
		if other, ok := seen[id]; ok {
			t.Errorf("namespaces %q and %q share id %#x", ns, other, id)
		}
		seen[id] = ns
		if newSpace(ns).baseKey("portfolio:42") == newSpace("").baseKey("portfolio:42") {
			t.Errorf("namespace %q: the key of portfolio:42 is the empty namespace's", ns)
		}
	}
}

func TestNames_bounded(t *testing.T) {
	t.Parallel()
	n := newNames(2)
	n.add(1, "one")
	n.add(2, "two")
	n.add(3, "three") // forgets "one", the oldest
	for key, want := range map[uint64]string{1: "", 2: "two", 3: "three"} {
		if got, _ := n.get(key); got != want {
			t.Errorf("get(%d) = %q, want %q", key, got, want)
		}
	}
}
