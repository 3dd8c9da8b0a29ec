package config

import (
	"fmt"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Validator is implemented by plugin settings (a source's or an output's
// config struct) that check their own values. It runs when the config is
// loaded, before any work, so a bad value stops the run instead of
// failing one source after the others moved their checkpoints. Errors
// name the key (without the section prefix, which the caller adds).
type Validator interface {
	Validate() error
}

// PathResolver is implemented by plugin settings that hold file or
// directory paths: ResolvePaths rewrites each non-empty relative path
// with resolve, which makes it relative to the config file's folder.
type PathResolver interface {
	ResolvePaths(resolve func(string) string)
}

// ResolvePath makes a relative path relative to the config file's folder
// (Dir); absolute and empty paths are returned as they are.
func (c *Config) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// LoadPlugin decodes one plugin section (sources.<name> or
// outputs.<name>, n may be nil) strictly into target, resolves its paths
// against the config file's folder and validates it.
func (c *Config) LoadPlugin(n *yaml.Node, section string, target any) error {
	if err := DecodePlugin(n, section, target); err != nil {
		return err
	}
	if r, ok := target.(PathResolver); ok {
		r.ResolvePaths(c.ResolvePath)
	}
	if v, ok := target.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%s: %w", section, err)
		}
	}
	return nil
}
