package revocation

import (
	"sync"
	"time"
)

// MemoryCache is a bounded in-process Cache, for long-lived callers (the
// CLI's batch verification, a future in-process Ratify verifier).
type MemoryCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]memEntry
	now     func() time.Time
}

type memEntry struct {
	answer  Answer
	expires time.Time // zero: never
}

// NewMemoryCache keeps at most max entries (1024 if max <= 0); when full,
// expired entries go first, then an arbitrary one.
func NewMemoryCache(max int) *MemoryCache {
	if max <= 0 {
		max = 1024
	}
	return &MemoryCache{max: max, entries: map[string]memEntry{}, now: time.Now}
}

// Get implements Cache.
func (m *MemoryCache) Get(key string) (Answer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok {
		return Answer{}, false
	}
	if !e.expires.IsZero() && !m.now().Before(e.expires) {
		delete(m.entries, key)
		return Answer{}, false
	}
	return e.answer, true
}

// Put implements Cache.
func (m *MemoryCache) Put(key string, a Answer, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if _, ok := m.entries[key]; !ok && len(m.entries) >= m.max {
		for k, e := range m.entries {
			if !e.expires.IsZero() && !now.Before(e.expires) {
				delete(m.entries, k)
			}
		}
		for k := range m.entries {
			if len(m.entries) < m.max {
				break
			}
			delete(m.entries, k)
		}
	}
	var expires time.Time
	if ttl != Forever {
		expires = now.Add(ttl)
	}
	m.entries[key] = memEntry{answer: a, expires: expires}
}
