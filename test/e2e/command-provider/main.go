// Command pulumi-resource-command serves the `command` package's local.Command resource and
// local.run function to the end-to-end test. The module proxy serves no version of the
// pulumi-command provider module, so scripts/build-engine.sh builds this instead; it follows the
// behaviour documented for @pulumi/command's local commands:
//
//   - create runs on create; update runs on update, or create again when update is unset; delete
//     runs on delete. Each runs through interpreter (default /bin/sh -c) in dir, with environment
//     added to the provider's own environment and stdin on standard input.
//   - update and delete see the previous PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR unless
//     addPreviousOutputInEnv is false.
//   - stdout and stderr become outputs without their final newline; a changed trigger replaces.
//   - output lines are logged to the engine as the logging input selects (both by default), except
//     when an input is secret.
//
// Remote commands, assetPaths and archivePaths are refused, so a program that needs them fails
// at check time instead of behaving differently from the real provider.
package main

import (
	"context"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	pprovider "github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// version is set at build time to the @pulumi/command version the program asks for.
var version = "0.0.0-dev"

const (
	commandType = "command:local:Command"
	runFunction = "command:local:run"
)

// outputKeys are the properties the provider adds; every other property is an input.
var outputKeys = map[resource.PropertyKey]bool{"stdout": true, "stderr": true, "assets": true, "archive": true}

var unsupportedKeys = []resource.PropertyKey{"assetPaths", "archivePaths"}

var replacing = map[pulumirpc.PropertyDiff_Kind]pulumirpc.PropertyDiff_Kind{
	pulumirpc.PropertyDiff_ADD:    pulumirpc.PropertyDiff_ADD_REPLACE,
	pulumirpc.PropertyDiff_DELETE: pulumirpc.PropertyDiff_DELETE_REPLACE,
	pulumirpc.PropertyDiff_UPDATE: pulumirpc.PropertyDiff_UPDATE_REPLACE,
}

var marshalOptions = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}

type commandProvider struct {
	pulumirpc.UnimplementedResourceProviderServer
	host *pprovider.HostClient
}

func main() {
	err := pprovider.Main("command", func(host *pprovider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &commandProvider{host: host}, nil
	})
	if err != nil {
		cmdutil.ExitError(err.Error())
	}
}

func (p *commandProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *commandProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *commandProvider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true}, nil
}

func (p *commandProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if typ := resource.URN(req.GetUrn()).Type(); typ != commandType {
		return nil, fmt.Errorf("%s is not supported by this build of the command provider: only %s is", typ, commandType)
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), marshalOptions)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews(), Failures: checkInputs(news)}, nil
}

func checkInputs(inputs resource.PropertyMap) []*pulumirpc.CheckFailure {
	var failures []*pulumirpc.CheckFailure
	for _, key := range unsupportedKeys {
		if v, ok := inputs[key]; ok && !v.IsNull() {
			failures = append(failures, &pulumirpc.CheckFailure{
				Property: string(key),
				Reason:   string(key) + " is not supported by this build of the command provider",
			})
		}
	}
	return failures
}

func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	oldStruct := req.GetOldInputs()
	if oldStruct == nil {
		oldStruct = req.GetOlds()
	}
	olds, err := plugin.UnmarshalProperties(oldStruct, marshalOptions)
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), marshalOptions)
	if err != nil {
		return nil, err
	}
	ignored := map[string]bool{}
	for _, key := range req.GetIgnoreChanges() {
		ignored[key] = true
	}

	keys := map[resource.PropertyKey]bool{}
	for k := range olds {
		keys[k] = true
	}
	for k := range news {
		keys[k] = true
	}
	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_NONE,
		DetailedDiff:    map[string]*pulumirpc.PropertyDiff{},
		HasDetailedDiff: true,
	}
	for _, key := range sortedKeys(keys) {
		if outputKeys[key] || ignored[string(key)] {
			continue
		}
		oldValue, hadOld := olds[key]
		newValue, hasNew := news[key]
		hadOld = hadOld && !oldValue.IsNull()
		hasNew = hasNew && !newValue.IsNull()
		if hadOld == hasNew && (!hasNew || (!newValue.ContainsUnknowns() && oldValue.DeepEquals(newValue))) {
			continue
		}
		kind := pulumirpc.PropertyDiff_UPDATE
		switch {
		case !hadOld:
			kind = pulumirpc.PropertyDiff_ADD
		case !hasNew:
			kind = pulumirpc.PropertyDiff_DELETE
		}
		if key == "triggers" {
			kind = replacing[kind]
			resp.Replaces = append(resp.Replaces, string(key))
		}
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
		resp.Diffs = append(resp.Diffs, string(key))
		resp.DetailedDiff[string(key)] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
	}
	return resp, nil
}

func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs, err := plugin.UnmarshalProperties(req.GetProperties(), marshalOptions)
	if err != nil {
		return nil, err
	}
	id, err := resource.NewUniqueHex(resource.URN(req.GetUrn()).Name()+"-", 8, 0)
	if err != nil {
		return nil, err
	}
	outputs, err := p.apply(ctx, resource.URN(req.GetUrn()), inputs, nil, "create", req.GetPreview())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: outputs}, nil
}

func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	olds, err := plugin.UnmarshalProperties(req.GetOlds(), marshalOptions)
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), marshalOptions)
	if err != nil {
		return nil, err
	}
	step := "update"
	if str(news, "update") == "" {
		step = "create"
	}
	outputs, err := p.apply(ctx, resource.URN(req.GetUrn()), news, olds, step, req.GetPreview())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: outputs}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	state, err := plugin.UnmarshalProperties(req.GetProperties(), marshalOptions)
	if err != nil {
		return nil, err
	}
	if script := str(state, "delete"); script != "" {
		if _, _, err := p.run(ctx, resource.URN(req.GetUrn()), script, state, state); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// Read keeps the recorded state: a command has nothing to refresh from.
func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

func (p *commandProvider) Invoke(ctx context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	if req.GetTok() != runFunction {
		return nil, fmt.Errorf("%s is not supported: only %s is", req.GetTok(), runFunction)
	}
	args, err := plugin.UnmarshalProperties(req.GetArgs(), marshalOptions)
	if err != nil {
		return nil, err
	}
	if failures := checkInputs(args); len(failures) > 0 {
		return &pulumirpc.InvokeResponse{Failures: failures}, nil
	}
	stdout, stderr, err := p.run(ctx, "", str(args, "command"), args, nil)
	if err != nil {
		return nil, err
	}
	result := args.Copy()
	result["stdout"] = resource.NewStringProperty(stdout)
	result["stderr"] = resource.NewStringProperty(stderr)
	ret, err := plugin.MarshalProperties(result, marshalOptions)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.InvokeResponse{Return: ret}, nil
}

// apply runs the step's script (unless previewing) and returns the new state: the inputs plus
// stdout and stderr, secret when any input is secret.
func (p *commandProvider) apply(ctx context.Context, urn resource.URN, inputs, olds resource.PropertyMap,
	step string, preview bool,
) (*structpb.Struct, error) {
	state := inputs.Copy()
	script := str(inputs, resource.PropertyKey(step))
	switch {
	case preview:
		state["stdout"] = resource.MakeComputed(resource.NewStringProperty(""))
		state["stderr"] = resource.MakeComputed(resource.NewStringProperty(""))
	case script == "":
		state["stdout"] = previousOr(olds, "stdout")
		state["stderr"] = previousOr(olds, "stderr")
	default:
		stdout, stderr, err := p.run(ctx, urn, script, inputs, olds)
		if err != nil {
			return nil, err
		}
		state["stdout"] = resource.NewStringProperty(stdout)
		state["stderr"] = resource.NewStringProperty(stderr)
	}
	if !preview && resource.NewObjectProperty(inputs).ContainsSecrets() {
		state["stdout"] = resource.MakeSecret(state["stdout"])
		state["stderr"] = resource.MakeSecret(state["stderr"])
	}
	return plugin.MarshalProperties(state, marshalOptions)
}

func previousOr(olds resource.PropertyMap, key resource.PropertyKey) resource.PropertyValue {
	if v, ok := olds[key]; ok {
		return v
	}
	return resource.NewStringProperty("")
}
