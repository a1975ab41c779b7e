using System.CommandLine;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Isotun.Config;
using Isotun.Server.Configuration;

namespace Isotun.Cli.Commands;

/// <summary><c>isotun config</c>: validate a server or gateway configuration (every error at once) and print a commented example.</summary>
public static class ConfigCommands
{
    private const int Ok = 0;
    private const int ConfigError = 2;

    public static Command Create()
    {
        var command = new Command("config", "Validate a server or gateway configuration, or print an example");
        command.Subcommands.Add(CreateValidate());
        command.Subcommands.Add(CreateExample());
        return command;
    }

    private static Command CreateValidate()
    {
        var file = new Argument<string>("FILE") { Description = "Server or gateway configuration file (YAML)" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON" };
        var gateway = new Option<bool>("--gateway") { Description = "The file is a gateway's (found on its own when it has a top-level `routes:`)" };
        var command = new Command("validate", "Check a server or gateway configuration file and print every error with its path");
        command.Arguments.Add(file);
        command.Options.Add(json);
        command.Options.Add(gateway);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var path = parseResult.GetValue(file)!;
            var result = parseResult.GetValue(gateway) || IsGatewayFile(path) ? ValidateGateway(path) : Validate(ServerConfigLoader.Load(path));
            if (parseResult.GetValue(json))
            {
                output.WriteLine(ToJson(result));
            }
            else if (result.Ok)
            {
                output.WriteLine($"{path}: ok");
            }
            else
            {
                error.WriteLine($"{path}: {result.Errors.Count} error{(result.Errors.Count == 1 ? string.Empty : "s")}");
                foreach (var item in result.Errors)
                {
                    error.WriteLine($"  {item.Path}: {item.Message}");
                }
            }

            return result.Ok ? Ok : ConfigError;
        });
        return command;
    }

    private static Command CreateExample()
    {
        var stateDir = new Option<string>("--state-dir")
        {
            Description = "Put the state file and the cookie key in this directory (default: next to the config)",
        };
        var command = new Command("example", "Print a commented example configuration that works with the README's files");
        command.Options.Add(stateDir);
        command.SetAction(parseResult =>
        {
            parseResult.InvocationConfiguration.Output.Write(ServerConfigLoader.Example(parseResult.GetValue(stateDir)));
            return Ok;
        });
        return command;
    }

    /// <summary>A gateway's file names its routes at the top level; a server's never has that key.</summary>
    private static bool IsGatewayFile(string path)
    {
        try
        {
            return File.Exists(path) && File.ReadLines(path).Any(l => l.StartsWith("routes:", StringComparison.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // the server's loader reads it next, and reports why it cannot
        }
    }

    private sealed record Validation(bool Ok, IReadOnlyList<ConfigError> Errors);

    private static Validation Validate(ConfigLoadResult loaded) => new(loaded.Ok, loaded.Errors);

    /// <summary>A gateway file, checked as `isotun gateway --check` does: the file, then its certificates and keys.</summary>
    private static Validation ValidateGateway(string path)
    {
        var loaded = Isotun.Gateway.Configuration.GatewayConfigLoader.Load(path);
        if (!loaded.Ok) return new(false, loaded.Errors);
        return Isotun.Gateway.GatewayRuntime.Build(loaded.Config!, out var errors) is null ? new(false, errors) : new(true, []);
    }

    private static string ToJson(Validation result)
    {
        using var buffer = new MemoryStream();
        // Relaxed escaping keeps quotes in messages readable; the output is still valid JSON.
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var writer = new Utf8JsonWriter(buffer, options))
        {
            writer.WriteStartObject();
            writer.WriteBoolean("ok", result.Ok);
            writer.WriteStartArray("errors");
            foreach (var item in result.Errors)
            {
                writer.WriteStartObject();
                writer.WriteString("path", item.Path);
                writer.WriteString("message", item.Message);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
