package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Batch collects the mutations of one Update. Its methods plan each
// mutation at once (so a later one sees an earlier one's effect, and
// errors such as ErrFull show up where they happen); Update applies them
// all when fn returns nil. A Batch must not be used after fn returns.
// Its errors name the key they are about.
type Batch struct {
	t *txn
}

// Update runs fn and applies the mutations it makes through b as one
// transaction under one acquisition of the writer lock: all of them or, if
// fn returns an error or the process dies before the commit, none. A failed
// mutation inside fn changes nothing by itself; fn decides whether to go on.
// fn runs once.
//
// Readers in other goroutines and processes are not isolated from a batch
// while it is being published: for an instant they may see some of its
// mutations and not others. Crash atomicity is what Update adds.
//
// fn runs with this Store's writer held: it must use b, not the Store's
// own mutating methods, which return ErrInUpdate when called from fn.
//
// A batch holds at most as many mutations as the journal has room for
// (store size / 64 KiB, between 8 and 4096); beyond that its mutations
// return ErrTooLarge.
func (s *Store) Update(fn func(b *Batch) error) error {
	return s.UpdateContext(context.Background(), fn)
}

// UpdateContext is Update with a deadline for taking the writer lock: if
// ctx is done while a live process holds it (or Options.WriteTimeout
// passes first), it returns ErrLockTimeout, naming the holder's pid and
// wrapping ctx's error, and fn never runs. Once fn runs, ctx is not looked
// at again: fn decides.
func (s *Store) UpdateContext(ctx context.Context, fn func(b *Batch) error) error {
	fnFailed := false // then the error is fn's: it is returned as fn made it
	err := s.withLock(ctx, func(t *txn) error {
		s.batch.reset()
		t.batch = &s.batch
		// NB: the Batch lives in the Store (guarded by wmu), so an Update
		// allocates nothing: fn is called indirectly, so a Batch made here
		// would escape to the heap.
		b := &s.b
		b.t = t
		s.updateG.Store(curG(s))
		defer func() { b.t = nil; s.updateG.Store(0) }()
		err := fn(b)
		fnFailed = err != nil
		return err
	}, true)
	if fnFailed {
		return err
	}
	return s.fail("update", err)
}

// batchIndex finds a batch's planned intents. Its maps are kept in the
// Store and cleared per batch, so a batch allocates nothing once warm.
type batchIndex struct {
	byHash table    // key hash -> 1 + index of the latest intent for such a key
	chain  []uint32 // chain[i]: 1 + index of the previous intent with the same hash, or 0
	slots  table    // slot -> 1 + index of the latest intent publishing into it
}

func (b *batchIndex) reset() {
	b.byHash.reset()
	b.slots.reset()
	b.chain = b.chain[:0]
}

var errBatchDone = errors.New("shmkv: Batch used after its Update returned")

// keyError names the key a failed mutation was about.
func keyError(op string, key []byte, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", op, QuoteKey(key), err)
}

// QuoteKey is key for a message: quoted, with bytes that are not printable
// escaped, and cut after 64 bytes with its length said.
func QuoteKey(key []byte) string {
	const most = 64
	if len(key) <= most {
		return strconv.Quote(string(key))
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(string(key[:most])), len(key))
}

// Put plans setting key to value.
func (b *Batch) Put(key, value []byte) error {
	if b.t == nil {
		return errBatchDone
	}
	return keyError("put", key, b.t.put(key, value, condNone, nil))
}

// Delete plans removing key; ErrNotFound if it is absent (counting this
// batch's earlier mutations).
func (b *Batch) Delete(key []byte) error {
	if b.t == nil {
		return errBatchDone
	}
	return keyError("delete", key, b.t.del(key, nil))
}

// DeleteIfExists plans removing key if it is there, and reports whether
// it was: an absent key is not an error.
func (b *Batch) DeleteIfExists(key []byte) (bool, error) {
	if b.t == nil {
		return false, errBatchDone
	}
	err := b.t.del(key, nil)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, keyError("delete", key, err)
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
	return err == nil, keyError("compare-and-swap", key, err)
}

// Add plans adding delta to the counter at key (see Store.Add) and
// returns its new value.
func (b *Batch) Add(key []byte, delta int64) (int64, error) {
	if b.t == nil {
		return 0, errBatchDone
	}
	n, err := b.t.addCounter(key, delta)
	return n, keyError("add", key, err)
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
		return nil, keyError("get", key, err)
	}
	if !p.found {
		return nil, keyError("get", key, ErrNotFound)
	}
	v := bytes.Clone(b.t.s.value(p.b))
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Has reports whether key is there as this batch would leave it.
func (b *Batch) Has(key []byte) (bool, error) {
	if b.t == nil {
		return false, errBatchDone
	}
	p, err := b.t.find(key)
	if err != nil {
		return false, keyError("has", key, err)
	}
	return p.found, nil
}
