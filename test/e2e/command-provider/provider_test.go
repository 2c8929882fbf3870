package main

// The behaviour of @pulumi/command's local.Command that this provider follows, checked against the
// provider's own gRPC methods, in process: what each step runs, with which environment and stdin,
// what replaces, and what it refuses.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

const urn = "urn:pulumi:test::cc-sandbox::command:local:Command::probe"

func props(t *testing.T, m map[string]interface{}) *structpb.Struct {
	t.Helper()
	s, err := plugin.MarshalProperties(resource.NewPropertyMapFromMap(m), marshalOptions)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unmarshal(t *testing.T, s *structpb.Struct) resource.PropertyMap {
	t.Helper()
	m, err := plugin.UnmarshalProperties(s, marshalOptions)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inputs are a command's inputs with logging off (the tests have no engine to log to).
func inputs(extra map[string]interface{}) map[string]interface{} {
	m := map[string]interface{}{"logging": "none", "interpreter": []interface{}{"/bin/sh", "-c"}}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestCreateRunsCreateWithEnvironmentStdinAndInterpreter(t *testing.T) {
	p := &commandProvider{}
	resp, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Properties: props(t, inputs(map[string]interface{}{
		"create":      `printf '%s|%s|' "$CC_PLAN" "$0"; cat; echo; echo err >&2`,
		"environment": map[string]interface{}{"CC_PLAN": "plan-value"},
		"stdin":       "from-stdin",
	}))})
	if err != nil {
		t.Fatal(err)
	}
	out := unmarshal(t, resp.GetProperties())
	if got := out["stdout"].StringValue(); got != "plan-value|/bin/sh|from-stdin" {
		t.Errorf("stdout = %q (the final newline is dropped, as the real provider does)", got)
	}
	if got := out["stderr"].StringValue(); got != "err" {
		t.Errorf("stderr = %q", got)
	}
	if resp.GetId() == "" || !strings.HasPrefix(resp.GetId(), "probe-") {
		t.Errorf("id = %q", resp.GetId())
	}
}

func TestUpdateRunsUpdateWithThePreviousOutputOrCreateWhenUnset(t *testing.T) {
	p := &commandProvider{}
	olds := props(t, inputs(map[string]interface{}{"create": "echo first", "stdout": "first", "stderr": ""}))
	withUpdate := props(t, inputs(map[string]interface{}{"create": "echo create-again", "update": `echo "update saw $PULUMI_COMMAND_STDOUT"`}))
	resp, err := p.Update(context.Background(), &pulumirpc.UpdateRequest{Urn: urn, Olds: olds, News: withUpdate})
	if err != nil {
		t.Fatal(err)
	}
	if got := unmarshal(t, resp.GetProperties())["stdout"].StringValue(); got != "update saw first" {
		t.Errorf("with update set: stdout = %q", got)
	}
	withoutUpdate := props(t, inputs(map[string]interface{}{"create": "echo create-again"}))
	resp, err = p.Update(context.Background(), &pulumirpc.UpdateRequest{Urn: urn, Olds: olds, News: withoutUpdate})
	if err != nil {
		t.Fatal(err)
	}
	if got := unmarshal(t, resp.GetProperties())["stdout"].StringValue(); got != "create-again" {
		t.Errorf("without update: stdout = %q", got)
	}
	noPrevious := props(t, inputs(map[string]interface{}{"update": `echo "[$PULUMI_COMMAND_STDOUT]"`, "addPreviousOutputInEnv": false}))
	resp, err = p.Update(context.Background(), &pulumirpc.UpdateRequest{Urn: urn, Olds: olds, News: noPrevious})
	if err != nil {
		t.Fatal(err)
	}
	if got := unmarshal(t, resp.GetProperties())["stdout"].StringValue(); got != "[]" {
		t.Errorf("addPreviousOutputInEnv false: stdout = %q", got)
	}
}

func TestDeleteRunsDeleteWithTheRecordedStateAndOutput(t *testing.T) {
	p := &commandProvider{}
	marker := filepath.Join(t.TempDir(), "deleted")
	state := props(t, inputs(map[string]interface{}{
		"create":      "true",
		"delete":      `printf '%s %s' "$PULUMI_COMMAND_STDOUT" "$WHO" >"$MARKER"`,
		"environment": map[string]interface{}{"WHO": "env-from-state", "MARKER": marker},
		"stdout":      "last-stdout",
	}))
	if _, err := p.Delete(context.Background(), &pulumirpc.DeleteRequest{Urn: urn, Properties: state}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "last-stdout env-from-state" {
		t.Errorf("delete saw %q", got)
	}
}

func TestDiffReplacesOnTriggersOnlyAndIgnoresOutputs(t *testing.T) {
	p := &commandProvider{}
	base := map[string]interface{}{"create": "echo a", "triggers": []interface{}{"one"}, "stdout": "a"}
	diff := func(news map[string]interface{}) *pulumirpc.DiffResponse {
		t.Helper()
		resp, err := p.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: urn, Olds: props(t, base), News: props(t, news)})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := diff(map[string]interface{}{"create": "echo a", "triggers": []interface{}{"one"}}); r.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
		t.Errorf("same inputs (stdout is an output): %v", r.GetDiffs())
	}
	r := diff(map[string]interface{}{"create": "echo b", "triggers": []interface{}{"one"}})
	if r.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME || len(r.GetReplaces()) != 0 || r.GetDetailedDiff()["create"].GetKind() != pulumirpc.PropertyDiff_UPDATE {
		t.Errorf("a changed command is an update, not a replacement: %v", r)
	}
	r = diff(map[string]interface{}{"create": "echo a", "triggers": []interface{}{"two"}})
	if len(r.GetReplaces()) != 1 || r.GetReplaces()[0] != "triggers" || r.GetDetailedDiff()["triggers"].GetKind() != pulumirpc.PropertyDiff_UPDATE_REPLACE {
		t.Errorf("a changed trigger replaces: %v", r)
	}
}

func TestPreviewRunsNothingAndLeavesOutputsUnknown(t *testing.T) {
	p := &commandProvider{}
	marker := filepath.Join(t.TempDir(), "ran")
	resp, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Preview: true, Properties: props(t, inputs(map[string]interface{}{
		"create": "touch " + marker,
	}))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a preview ran the command")
	}
	if out := unmarshal(t, resp.GetProperties()); !out["stdout"].IsComputed() {
		t.Errorf("stdout in a preview = %v, want unknown", out["stdout"])
	}
}

func TestSecretInputsMakeSecretOutputs(t *testing.T) {
	p := &commandProvider{}
	m := resource.NewPropertyMapFromMap(inputs(map[string]interface{}{"create": "cat"}))
	m["stdin"] = resource.MakeSecret(resource.NewStringProperty("s3cret"))
	s, err := plugin.MarshalProperties(m, marshalOptions)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Properties: s})
	if err != nil {
		t.Fatal(err)
	}
	out := unmarshal(t, resp.GetProperties())
	if !out["stdout"].IsSecret() || out["stdout"].SecretValue().Element.StringValue() != "s3cret" {
		t.Errorf("stdout = %v, want the secret s3cret", out["stdout"])
	}
}

func TestAFailingCommandFailsWithItsOutput(t *testing.T) {
	p := &commandProvider{}
	_, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Properties: props(t, inputs(map[string]interface{}{
		"create": "echo why-it-failed >&2; exit 3",
	}))})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "why-it-failed") {
		t.Errorf("err = %v", err)
	}
}

func TestRefusesWhatItDoesNotImplement(t *testing.T) {
	p := &commandProvider{}
	resp, err := p.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urn, News: props(t, inputs(map[string]interface{}{
		"create": "true", "assetPaths": []interface{}{"a"},
	}))})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFailures()) != 1 || resp.GetFailures()[0].GetProperty() != "assetPaths" {
		t.Errorf("assetPaths: failures = %v", resp.GetFailures())
	}
	remote := "urn:pulumi:test::cc-sandbox::command:remote:Command::probe"
	if _, err := p.Check(context.Background(), &pulumirpc.CheckRequest{Urn: remote, News: props(t, map[string]interface{}{})}); err == nil {
		t.Error("remote:Command was accepted")
	}
	if _, err := p.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: "command:remote:run", Args: props(t, map[string]interface{}{})}); err == nil {
		t.Error("remote:run was accepted")
	}
}

func TestRunInvokeReturnsTheCommandsOutput(t *testing.T) {
	p := &commandProvider{}
	resp, err := p.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: runFunction, Args: props(t, inputs(map[string]interface{}{
		"command": `echo "$X"`, "environment": map[string]interface{}{"X": "ran"},
	}))})
	if err != nil {
		t.Fatal(err)
	}
	if got := unmarshal(t, resp.GetReturn())["stdout"].StringValue(); got != "ran" {
		t.Errorf("stdout = %q", got)
	}
}
