package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/store"
)

func (c *cli) stat(args []string) error {
	fl := c.flags("stat")
	asJSON := fl.Bool("json", false, "print the store.Stats struct as JSON, with Mode in octal (\"0600\")")
	if _, err := c.parse(fl, args, 0, 0); err != nil {
		return err
	}
	// Read-only: stat needs no lock and should not count itself among the
	// attached processes.
	s, err := c.open(true)
	if err != nil {
		return err
	}
	defer s.Close()
	st := s.Stats()
	if *asJSON {
		b, err := json.MarshalIndent(newStatJSON(st), "", "  ")
		if err != nil {
			return failed("stat", err)
		}
		_, err = c.stdout.Write(append(b, '\n'))
		return err
	}
	writeStats(c.stdout, &st)
	return nil
}

// writeStats prints st as aligned "key: value" lines.
func writeStats(w io.Writer, st *store.Stats) {
	var kv [][2]string
	add := func(k, format string, args ...any) {
		kv = append(kv, [2]string{k, fmt.Sprintf(format, args...)})
	}
	add("name", "%s", st.Name)
	add("path", "%s", st.Path)
	add("size", "%s (heap %s)", sizeString(st.Size), units.FormatBytes(st.HeapSize))
	add("initial size", "%s", sizeString(st.InitialSize))
	add("max size", "%s", maxSizeString(st))
	if st.ObjectBytes != 0 && st.ObjectBytes != st.Size {
		add("object", "%s", objectString(st))
	}
	add("growths", "%d", st.Growths)
	if st.MaxEntries != 0 {
		add("entries", "%d / %d (MaxEntries)", st.Entries, st.MaxEntries)
	} else {
		add("entries", "%d (no limit but the size)", st.Entries)
	}
	index := fmt.Sprintf("%s for %d entries; grew %s", units.FormatBytes(st.IndexBytes), st.IndexCapacity, counted(st.IndexMigrations, "time", "times"))
	if st.IndexMigrating {
		index += fmt.Sprintf("; growing: %d of %d buckets moved", st.IndexMoved, st.IndexOldBuckets)
	}
	add("index", "%s", index)
	add("used", "%s in blocks, %s of keys and values", units.FormatBytes(st.BlockBytes), units.FormatBytes(st.KeyValueBytes))
	add("free", "%s (%s in freed blocks + %s never used)",
		units.FormatBytes(st.FreeListBytes+st.TailBytes), units.FormatBytes(st.FreeListBytes), units.FormatBytes(st.TailBytes))
	if st.LazyFreeBytes > 0 {
		add("lazy free", "%s of the freed blocks left unmerged for same-size overwrites", units.FormatBytes(st.LazyFreeBytes))
	}
	add("fill", "%.1f%%", 100*st.Fill)
	add("largest free", "%s in one piece", units.FormatBytes(st.LargestFree))
	add("fragmentation", "%.1f%% of free space is outside the largest free piece", 100*st.Fragmentation)
	add("reserve", "%s of the never-used space kept free for compaction to move entries into", units.FormatBytes(st.Reserve))
	add("compaction", "%s moved in %s, %s over the heap",
		units.FormatBytes(st.BytesMoved), counted(st.Compactions, "transaction", "transactions"), counted(st.CompactPasses, "pass", "passes"))
	add("overhead", "%s", overheadString(st))
	add("options", "hugepages=%s noreserve=%s populate=%s lock=%s mode=%s",
		st.HugePages, yesNo(st.NoReserve), yesNo(st.Populate), yesNo(st.Lock), modeString(st.Mode))
	add("owner", "%s, mode %s (the object's, now)", st.OwnerName, modeString(st.Mode))
	if st.ForeignLocks > 0 {
		add("foreign locks", "%d process slots read-locked by processes that are not shmkv writers", st.ForeignLocks)
	}
	add("backing", "%s", st.Backing)
	add("thp shmem_enabled", "%s", st.THPShmem)
	add("writer lock", "%s", lockString(st.Writer))
	add("attached", "%d processes", st.Attached)
	add("commits", "%d", st.Commits)
	add("recoveries", "%d (transactions repaired after a writer died)", st.Recoveries)
	add("take-overs", "%d (writer locks taken from dead holders)", st.TakeOvers)
	add("created", "%s by pid %d", st.Created.Format(time.DateTime), st.CreatorPID)
	add("format", "version %d", st.Version)
	width := 0
	for _, p := range kv {
		width = max(width, len(p[0]))
	}
	var b strings.Builder
	for _, p := range kv {
		fmt.Fprintf(&b, "%-*s  %s\n", width+1, p[0]+":", p[1])
	}
	io.WriteString(w, b.String())
}

// maxSizeString is the stat line on how far the store may grow.
func maxSizeString(st *store.Stats) string {
	switch {
	case st.Size < st.MaxSize:
		return sizeString(st.MaxSize) + " (it grows as writes need room, up to this; shmkv grow grows it now)"
	case st.InitialSize >= st.MaxSize:
		return sizeString(st.MaxSize) + " (a fixed size: it never grows)"
	}
	return sizeString(st.MaxSize) + " (reached: it grows no more)"
}

// objectString is the stat line on an object whose length is not the
// store's size. Growth extends the object first and publishes the new size
// after (store/growth.go): between the two the object is longer, and a
// writer that dies there leaves it so, which harms nothing.
func objectString(st *store.Stats) string {
	switch {
	case st.ObjectBytes > st.MaxSize:
		return sizeString(st.ObjectBytes) + ", longer than the maximum size: not by shmkv's growth (someone else resized it); the store uses only its size"
	case st.ObjectBytes > st.Size:
		return sizeString(st.ObjectBytes) + ", longer than the size: a writer is growing the store now, or died while growing it; the next growth reuses the extra bytes"
	}
	return sizeString(st.ObjectBytes) + ", shorter than the size: the object was cut (run shmkv check)"
}

// overheadString is the stat line on the bytes spent beyond keys and
// values. The index is sized ahead of the entries (for MaxEntries, or until it grows), so
// its share per entry means something only once a fair part of it is used
// (overheadFullEnough): before that, the line gives the blocks' overhead
// per entry and the index apart.
func overheadString(st *store.Stats) string {
	index := fmt.Sprintf("the index takes %s for %d entries", units.FormatBytes(st.IndexBytes), st.IndexCapacity)
	switch {
	case st.Entries == 0:
		return "- (no entries; " + index + ")"
	case st.Entries >= overheadFullEnough*st.IndexCapacity/100:
		return fmt.Sprintf("%.0f B per entry (block header, padding, index share)", st.OverheadPerEntry)
	}
	blocks := float64(st.BlockBytes-st.KeyValueBytes) / float64(st.Entries)
	return fmt.Sprintf("%.0f B per entry in blocks (header, padding), and %s, %.1f%% of them used (the index's share per entry is shown from %d%%)",
		blocks, index, 100*float64(st.Entries)/float64(st.IndexCapacity), overheadFullEnough)
}

// overheadFullEnough is the percentage of MaxEntries from which stat counts
// the index in the overhead per entry.
const overheadFullEnough = 10

func lockString(h store.LockHolder) string {
	switch {
	case !h.Held:
		return "free"
	case h.PID == 0:
		return fmt.Sprintf("held, holder unknown (word %#x)", h.Word)
	case h.Alive:
		return fmt.Sprintf("held by pid %d (slot %d), alive", h.PID, h.Slot)
	}
	return fmt.Sprintf("held by pid %d (slot %d), DEAD: the next writer takes it over and repairs the store", h.PID, h.Slot)
}

// counted is n and its noun: "1 pass", "2 passes".
func counted(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// sizeString is a byte count in a binary unit and, when that rounds, exact.
func sizeString(n int64) string {
	f := units.FormatBytes(n)
	if n < 1024 {
		return f
	}
	return fmt.Sprintf("%s, %d bytes", f, n)
}
