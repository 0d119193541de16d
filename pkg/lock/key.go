package lock

import (
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
)

// An advisory key is one PostgreSQL bigint:
//
//	bits 63..56  keyTag, so Status can tell this package's locks from other advisory locks
//	bits 55..40  the namespace's id: 16 bits of the FNV-1a hash of Config.Namespace
//	bits 39..1   FNV-1a hash of the namespace and the resource name
//	bit  0       kind: kindSelf or kindTree
//
// Advisory locks are per database, not per schema or role: services sharing a database
// share one key space. The namespace (the service's name) keeps them apart: two namespaces
// with different ids never have a key in common, whatever names they lock, and each
// Locker's Status lists its own namespace only. The fleet's namespaces are checked to have
// different ids (TestNamespaceIDs).
//
// Each resource has two keys. "self" guards the resource alone (read = shared,
// write = exclusive). "tree" guards the resource with its descendants: every lock on a
// resource takes it shared on that resource and on each ancestor, and Exclusive takes it
// exclusively, so Exclusive conflicts with every lock at or below the resource.
const (
	keyTag   = 0x70
	kindSelf = 0
	kindTree = 1
	hashMask = 0x0000_00ff_ffff_fffe
)

// MaxNameLen bounds a resource name, in bytes.
const MaxNameLen = 256

// space is the part of every key that a namespace fixes: the tag and the namespace's id.
type space struct {
	prefix uint64 // keyTag<<56 | id<<40
	salt   string // the namespace and a separator, hashed before each name
}

func newSpace(namespace string) space {
	return space{prefix: keyTag<<56 | namespaceID(namespace)<<40, salt: namespace + "\x00"}
}

// namespaceID is the 16-bit id of a namespace in its keys.
func namespaceID(namespace string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(namespace)) // never fails
	return h.Sum64() >> 48
}

// classPrefix is what the high 32 bits of the space's keys (pg_locks.classid) start with:
// classid >> 8.
func (sp space) classPrefix() int64 { return int64(sp.prefix >> 40) }

func (sp space) baseKey(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(sp.salt)) // never fails
	h.Write([]byte(name))
	return sp.prefix | h.Sum64()&hashMask
}

// step is one advisory lock call.
type step struct {
	resource  string // the resource the key belongs to: the name or one of its ancestors
	key       int64
	exclusive bool
}

// steps lists the advisory locks for name in mode, ancestors first, so that every
// locker takes a resource's keys in the same order.
func (sp space) steps(name string, mode Mode) []step {
	var out []step
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			out = append(out, step{resource: name[:i], key: int64(sp.baseKey(name[:i]) | kindTree)})
		}
	}
	base := sp.baseKey(name)
	tree := step{resource: name, key: int64(base | kindTree)}
	self := step{resource: name, key: int64(base | kindSelf)}
	switch mode {
	case Read:
		out = append(out, tree, self)
	case Write:
		self.exclusive = true
		out = append(out, tree, self)
	case Exclusive:
		tree.exclusive = true
		out = append(out, tree)
	}
	return out
}

func validate(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("lock name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("lock name %.40q...: longer than %d bytes", name, MaxNameLen)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" {
			return fmt.Errorf("lock name %q: empty path segment", name)
		}
	}
	return nil
}

// compareNames orders names segment by segment, so that every ancestor sorts right
// before its descendants and a sorted list takes its keys in one global order.
func compareNames(a, b string) int {
	for {
		sa, ra, moreA := strings.Cut(a, "/")
		sb, rb, moreB := strings.Cut(b, "/")
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		switch {
		case !moreA && !moreB:
			return 0
		case !moreA:
			return -1
		case !moreB:
			return 1
		}
		a, b = ra, rb
	}
}

// names remembers resource names by base key, so Status can show names for keys this
// process has locked. It holds at most max entries and forgets the oldest first.
type names struct {
	mu    sync.Mutex
	byKey map[uint64]string
	ring  []uint64
	next  int
	max   int
}

func newNames(max int) *names {
	return &names{byKey: make(map[uint64]string), max: max}
}

func (n *names) add(key uint64, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.byKey[key]; ok {
		return
	}
	if len(n.ring) < n.max {
		n.ring = append(n.ring, key)
	} else {
		delete(n.byKey, n.ring[n.next])
		n.ring[n.next] = key
		n.next = (n.next + 1) % n.max
	}
	n.byKey[key] = name
}

func (n *names) get(key uint64) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	name, ok := n.byKey[key]
	return name, ok
}
