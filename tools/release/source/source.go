// Package source exports one commit of the repository into a directory, so
// a release is built from what was committed, never from a working tree
// with edits in progress, and says when that commit was made (the
// timestamp every artifact carries, SOURCE_DATE_EPOCH).
package source

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Tree is an exported commit.
type Tree struct {
	// Dir holds the commit's files (git archive).
	Dir string
	// Commit is the full commit hash.
	Commit string
	// Time is the committer time, the artifacts' fixed timestamp.
	Time time.Time
}

// Export writes commit (a revision git understands: HEAD, a tag, a hash) of
// the repository at repo into dir, which must not exist yet or be empty.
// When SOURCE_DATE_EPOCH is set it replaces the commit time.
func Export(ctx context.Context, repo, commit, dir string) (*Tree, error) {
	hash, err := git(ctx, repo, "rev-parse", "--verify", commit+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("resolve commit %q in %s: %w", commit, repo, err)
	}
	hash = strings.TrimSpace(hash)
	when, err := commitTime(ctx, repo, hash)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", hash)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git archive: %w", err)
	}
	extractErr := extract(out, dir)
	waitErr := cmd.Wait()
	if waitErr != nil {
		return nil, fmt.Errorf("git archive %s: %v: %s", hash, waitErr, strings.TrimSpace(stderr.String()))
	}
	if extractErr != nil {
		return nil, fmt.Errorf("extract git archive %s: %w", hash, extractErr)
	}
	return &Tree{Dir: dir, Commit: hash, Time: when}, nil
}

func commitTime(ctx context.Context, repo, hash string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	ct, err := git(ctx, repo, "log", "-1", "--format=%ct", hash)
	if err != nil {
		return time.Time{}, err
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(ct), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("commit time of %s: %q", hash, ct)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func git(ctx context.Context, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// extract writes the regular files, directories and symbolic links of a git
// archive under dir, refusing any path that leaves it.
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(h.Name)
		if !filepath.IsLocal(name) {
			if h.Typeflag == tar.TypeXGlobalHeader {
				continue
			}
			return fmt.Errorf("archive path %q leaves the directory", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm()|0o200)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if !filepath.IsLocal(filepath.Join(filepath.Dir(name), filepath.FromSlash(h.Linkname))) {
				return fmt.Errorf("archive symbolic link %q -> %q leaves the directory", h.Name, h.Linkname)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
		default:
			return fmt.Errorf("archive entry %q of type %c not supported", h.Name, h.Typeflag)
		}
	}
}
