// How a command runs: through its interpreter with its environment and stdin, its output lines
// logged to the engine, and the property helpers the provider reads its inputs with.

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// run executes script as the inputs describe. previous holds the last stdout and stderr, which
// update and delete scripts receive in their environment.
func (p *commandProvider) run(ctx context.Context, urn resource.URN, script string,
	inputs, previous resource.PropertyMap,
) (string, string, error) {
	interpreter := strs(inputs, "interpreter")
	if len(interpreter) == 0 {
		interpreter = []string{"/bin/sh", "-c"}
	}
	args := append(append([]string{}, interpreter[1:]...), script)
	cmd := exec.CommandContext(ctx, interpreter[0], args...)
	cmd.Dir = str(inputs, "dir")
	cmd.Env = os.Environ()
	environment := obj(inputs, "environment")
	for _, key := range environment.StableKeys() {
		cmd.Env = append(cmd.Env, string(key)+"="+plain(environment[key]))
	}
	if addPrevious, ok := inputs["addPreviousOutputInEnv"]; !ok || !addPrevious.IsBool() || addPrevious.BoolValue() {
		if out := str(previous, "stdout"); out != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDOUT="+out)
		}
		if out := str(previous, "stderr"); out != "" {
			cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDERR="+out)
		}
	}
	if stdin := str(inputs, "stdin"); stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}

	// Output of a command with secret inputs may hold the secret, so it is never logged.
	logging := str(inputs, "logging")
	if resource.NewObjectProperty(inputs).ContainsSecrets() {
		logging = "none"
	}
	var stdout, stderr bytes.Buffer
	var combined lockedBuffer
	stdoutLog := p.lineLogger(ctx, urn, logging == "" || logging == "stdout" || logging == "stdoutAndStderr")
	stderrLog := p.lineLogger(ctx, urn, logging == "" || logging == "stderr" || logging == "stdoutAndStderr")
	cmd.Stdout = io.MultiWriter(&stdout, &combined, stdoutLog)
	cmd.Stderr = io.MultiWriter(&stderr, &combined, stderrLog)

	err := cmd.Run()
	stdoutLog.Close()
	stderrLog.Close()
	if err != nil {
		return "", "", fmt.Errorf("%w: running %q:\n%s", err, script, combined.String())
	}
	return strings.TrimSuffix(stdout.String(), "\n"), strings.TrimSuffix(stderr.String(), "\n"), nil
}

// lineLogger returns a writer that sends each complete line to the engine's log.
func (p *commandProvider) lineLogger(ctx context.Context, urn resource.URN, enabled bool) io.WriteCloser {
	if !enabled || urn == "" {
		return nopWriteCloser{io.Discard}
	}
	reader, writer := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		scanner := bufio.NewScanner(reader)
		scanner.Buffer(make([]byte, 64*1024), 1024*1024)
		for scanner.Scan() {
			_ = p.host.Log(ctx, diag.Info, urn, scanner.Text())
		}
		_, _ = io.Copy(io.Discard, reader)
	}()
	return &pipeLogger{writer: writer, done: done}
}

type pipeLogger struct {
	writer *io.PipeWriter
	done   chan struct{}
}

func (l *pipeLogger) Write(b []byte) (int, error) { return l.writer.Write(b) }

func (l *pipeLogger) Close() error {
	err := l.writer.Close()
	<-l.done
	return err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// plain unwraps secrets and renders a scalar as the shell would see it.
func plain(v resource.PropertyValue) string {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	switch {
	case v.IsString():
		return v.StringValue()
	case v.IsNull():
		return ""
	default:
		return fmt.Sprint(v.V)
	}
}

func str(m resource.PropertyMap, key resource.PropertyKey) string {
	v, ok := m[key]
	if !ok {
		return ""
	}
	return plain(v)
}

func strs(m resource.PropertyMap, key resource.PropertyKey) []string {
	v, ok := m[key]
	for ok && v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !ok || !v.IsArray() {
		return nil
	}
	var out []string
	for _, element := range v.ArrayValue() {
		out = append(out, plain(element))
	}
	return out
}

func obj(m resource.PropertyMap, key resource.PropertyKey) resource.PropertyMap {
	v, ok := m[key]
	for ok && v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !ok || !v.IsObject() {
		return resource.PropertyMap{}
	}
	return v.ObjectValue()
}

func sortedKeys(set map[resource.PropertyKey]bool) []resource.PropertyKey {
	keys := make([]resource.PropertyKey, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
