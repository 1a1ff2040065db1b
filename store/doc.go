// Package store is shmkv: a key-value store in a POSIX shared-memory
// object (/dev/shm/NAME) that every process using it maps. Processes share
// it at memory speed, with no server, socket or serialization.
//
// # The model
//
// A store is created once (Create, OpenOrCreate) with its size and
// options, which it records; other processes Open it by name. Every link
// inside the region is an offset from its base, so each process maps it
// wherever it likes. A Store is one process's handle, safe for many
// goroutines.
//
// Readers (Get, GetAppend, Has, Range, All...) take no lock and write
// nothing to the region: a ReadOnly Store maps it PROT_READ. A reader
// copies the entry its index slot names and keeps the copy only if the
// slot and the entry's first word are unchanged after it; otherwise it
// reads again. It never waits for a writer.
//
// Writers (Put, Delete, CompareAndSwap, Add, Update...) serialize on a lock
// in the region, a futex word whose value is the holder's identity. A
// process that dies holding it is noticed through an OFD lock the kernel
// drops at its death, and the next writer takes the lock over and repairs
// the store from the journal.
//
// # Crash atomicity
//
// Each mutation, or each Update batch, is a transaction: the writer logs
// the old value of every word it will change in place (the undo log),
// marks the journal committed, publishes each new entry with one atomic
// store into its index slot, and frees what it replaced. Killed before the
// mark, the transaction is undone; after it, redone. A write that returned
// nil is in the store for every process; one that did not is wholly absent
// or wholly present.
//
// # The put protocol
//
// A put never writes over a value a reader may be copying. It allocates a
// free block (free blocks merge with their neighbours; when none is big
// enough, the writer first compacts, sliding live entries down over the
// gaps), fills it with key and value where no reader can see it, commits,
// stores the block's offset into the key's index slot, and only then frees
// the old block, turning its sequence number odd so a reader still copying
// it sees the change.
//
// # The get protocol
//
// A get hashes the key to its home bucket in the index (64-byte buckets of
// 7 slots, linear probing), compares 16-bit tags, and for each candidate
// copies the entry and validates the copy as above. A bucket that no key
// probed past ends the search.
//
// # Creation
//
// Create makes the object exclusively, reserves its memory (fallocate),
// lays out the region and publishes its header's magic last; openers wait
// while a creator works. If the creator dies first, OpenOrCreate
// initialises the object again. OpenOrCreate only ever uses an object
// owned by this process's user.
//
// # Dump, load, backup and restore
//
// Dump writes every key and value as they all were at one instant, in a
// portable, versioned, checksummed format (dump.go) that NewDumpReader,
// Load and Store.Load read, in this version or any later one. Backup
// writes the region's image at one instant (backup.go), which Restore
// recreates under a temporary name, checks with Check, and renames into
// place: same format version only. Both read a snapshot (snapshot.go): the
// taker holds the writer lock twice for microseconds, and while its epoch
// lasts (Lock.Snapshot) every writer copies a page into the taker's copy
// buffer the first time it changes it; the taker reads each page live,
// unless a writer copied it first. Load puts in transactions of up to 1024
// keys, each all or nothing; LoadOptions.Replace builds the store under a
// temporary name and renames it over the name at the end.
//
// See the README for the guarantees and the tests that prove each, and
// package layout for the format.
package store
