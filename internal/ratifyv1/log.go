package ratifyv1

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Logger writes the plain-text lines Ratify understands on stderr
// ("INFO: …", "WARN: …", "DEBUG: …"). Ratify parses stderr together with
// stdout and treats any line holding a brace as a JSON candidate, so
// braces are replaced and every message is kept to one line.
type Logger struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLogger logs to w.
func NewLogger(w io.Writer) *Logger { return &Logger{w: w} }

var sanitize = strings.NewReplacer("{", "(", "}", ")", "\n", " ", "\r", " ")

func (l *Logger) line(level, format string, args ...any) {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s: %s\n", level, sanitize.Replace(fmt.Sprintf(format, args...)))
}

// Info logs at info level.
func (l *Logger) Info(format string, args ...any) { l.line("INFO", format, args...) }

// Warn logs at warning level.
func (l *Logger) Warn(format string, args ...any) { l.line("WARN", format, args...) }

// Debug logs at debug level.
func (l *Logger) Debug(format string, args ...any) { l.line("DEBUG", format, args...) }
