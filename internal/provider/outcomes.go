package provider

import (
	"container/list"
	"sync"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifygo"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Outcomes is a bounded, expiring cache of verification outcomes
// (ratifygo.OutcomeCache), least recently used evicted first. Its keys hold
// everything an outcome depends on (configuration generation, repository,
// subject digest, signature digest); how long an outcome may live is
// decided by ratifygo (never past its revocation answer or its expiry).
type Outcomes struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[ratifygo.OutcomeKey]*list.Element
	now   func() time.Time
	// OnLookup, when set, is told of every hit and miss (metrics).
	OnLookup func(hit bool)
}

type outcomeEntry struct {
	key     ratifygo.OutcomeKey
	report  verification.Report
	expires time.Time
}

// NewOutcomes keeps at most max outcomes.
func NewOutcomes(max int) *Outcomes {
	if max <= 0 {
		max = 1
	}
	return &Outcomes{max: max, ll: list.New(), items: map[ratifygo.OutcomeKey]*list.Element{}, now: time.Now}
}

// Get implements ratifygo.OutcomeCache.
func (o *Outcomes) Get(k ratifygo.OutcomeKey) (verification.Report, bool) {
	o.mu.Lock()
	r, ok := o.get(k)
	o.mu.Unlock()
	if o.OnLookup != nil {
		o.OnLookup(ok)
	}
	return r, ok
}

func (o *Outcomes) get(k ratifygo.OutcomeKey) (verification.Report, bool) {
	e, ok := o.items[k]
	if !ok {
		return verification.Report{}, false
	}
	ent := e.Value.(*outcomeEntry)
	if !o.now().Before(ent.expires) {
		o.ll.Remove(e)
		delete(o.items, k)
		return verification.Report{}, false
	}
	o.ll.MoveToFront(e)
	return ent.report, true
}

// Put implements ratifygo.OutcomeCache.
func (o *Outcomes) Put(k ratifygo.OutcomeKey, r verification.Report, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	exp := o.now().Add(ttl)
	if e, ok := o.items[k]; ok {
		e.Value = &outcomeEntry{key: k, report: r, expires: exp}
		o.ll.MoveToFront(e)
		return
	}
	for o.ll.Len() >= o.max {
		last := o.ll.Back()
		o.ll.Remove(last)
		delete(o.items, last.Value.(*outcomeEntry).key)
	}
	o.items[k] = o.ll.PushFront(&outcomeEntry{key: k, report: r, expires: exp})
}

// Len is the number of entries (expired ones included until looked up).
func (o *Outcomes) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ll.Len()
}

// Clear drops every outcome (a new configuration).
func (o *Outcomes) Clear() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ll.Init()
	clear(o.items)
}
