package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/store"
)

func (c *cli) ls(args []string) error {
	if _, err := c.parse(c.flags("ls"), args, 0, 0); err != nil {
		return err
	}
	stores, err := store.List()
	if err != nil {
		return &codeError{code: exitError, msg: fmt.Sprintf("shmkv ls: %v", err)}
	}
	if len(stores) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tENTRIES\tPATH")
	for _, f := range stores {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, units.FormatBytes(f.Size), entryCount(f.Name), f.Path)
	}
	return tw.Flush()
}

// entryCount opens the store read-only for its entry count; "?" if it
// cannot (another format version, no permission).
func entryCount(name string) string {
	s, err := store.Open(name, &store.Options{ReadOnly: true})
	if err != nil {
		return "?"
	}
	defer s.Close()
	return strconv.Itoa(s.Len())
}
