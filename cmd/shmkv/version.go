package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/shmkv/shmkv/layout"
)

// versionText is what `shmkv --version` and `shmkv version` print: the
// module version this binary was built from ("v1.2.0" from go install
// ...@v1.2.0; "(devel)" or a pseudo-version from a checkout, with the
// commit when the build recorded it) and the store format version, which
// says which stores it can open.
func versionText() string {
	version, rev, modified := "(devel)", "", false
	goVersion := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "shmkv " + version
	if rev != "" {
		line += " (revision " + rev
		if modified {
			line += ", modified"
		}
		line += ")"
	}
	return fmt.Sprintf("%s, %s\nstore format version %d\n", line, goVersion, layout.Version)
}

func (c *cli) version(args []string) error {
	if _, err := c.parse(c.flags("version"), args, 0, 0); err != nil {
		return err
	}
	_, err := fmt.Fprint(c.stdout, versionText())
	return err
}
