package store

import (
	"bytes"
	"errors"
)

// Batch collects the mutations of one Update. Its methods plan each
// mutation at once (so a later one sees an earlier one's effect, and
// errors such as ErrFull show up where they happen); Update applies them
// all when fn returns nil. A Batch must not be used after fn returns.
type Batch struct {
	t *txn
}

// Update runs fn and applies the mutations it makes through b as one
// transaction under one acquisition of the writer lock: all of them or, if
// fn returns an error or the process dies before the commit, none. A failed
// mutation inside fn changes nothing by itself; fn decides whether to go on.
//
// Readers in other goroutines and processes are not isolated from a batch
// while it is being published: for an instant they may see some of its
// mutations and not others. Crash atomicity is what Update adds.
//
// fn runs with this Store's writer held: it must use b, not the Store's
// own mutating methods, which would wait for it forever.
//
// A batch holds at most as many mutations as the journal has room for
// (store size / 64 KiB, between 8 and 4096); beyond that its mutations
// return ErrTooLarge.
func (s *Store) Update(fn func(b *Batch) error) error {
	return s.update(func(t *txn) error {
		s.batch.reset()
		t.batch = &s.batch
		// NB: the Batch lives in the Store (guarded by wmu), so an Update
		// allocates nothing: fn is called indirectly, so a Batch made here
		// would escape to the heap.
		b := &s.b
		b.t = t
		defer func() { b.t = nil }()
		return fn(b)
	})
}

var errBatchDone = errors.New("shmkv: Batch used after its Update returned")

// Put plans setting key to value.
func (b *Batch) Put(key, value []byte) error {
	if b.t == nil {
		return errBatchDone
	}
	return b.t.put(key, value, condNone, nil)
}

// Delete plans removing key; ErrNotFound if it is absent (counting this
// batch's earlier mutations).
func (b *Batch) Delete(key []byte) error {
	if b.t == nil {
		return errBatchDone
	}
	return b.t.del(key, nil)
}

// CompareAndSwap plans setting key to new if its value (counting this
// batch's earlier mutations) is old; old == nil means "only if absent".
func (b *Batch) CompareAndSwap(key, old, new []byte) (bool, error) {
	if b.t == nil {
		return false, errBatchDone
	}
	c := condEqual
	if old == nil {
		c = condAbsent
	}
	err := b.t.put(key, new, c, old)
	if errors.Is(err, errMismatch) {
		return false, nil
	}
	return err == nil, err
}

// Get returns a copy of key's value as this batch would leave it. Since the
// batch holds the writer lock, a read-modify-write through Get and Put is
// atomic with respect to every other writer.
func (b *Batch) Get(key []byte) ([]byte, error) {
	if b.t == nil {
		return nil, errBatchDone
	}
	p, err := b.t.find(key)
	if err != nil {
		return nil, err
	}
	if !p.found {
		return nil, ErrNotFound
	}
	v := bytes.Clone(b.t.s.value(p.b))
	if v == nil {
		v = []byte{}
	}
	return v, nil
}
