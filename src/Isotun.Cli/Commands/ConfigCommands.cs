using System.CommandLine;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Isotun.Config;

namespace Isotun.Cli.Commands;

/// <summary><c>isotun config</c>: validate a server configuration (every error at once) and print a commented example.</summary>
public static class ConfigCommands
{
    private const int Ok = 0;
    private const int ConfigError = 2;

    public static Command Create()
    {
        var command = new Command("config", "Validate a server configuration or print an example");
        command.Subcommands.Add(CreateValidate());
        command.Subcommands.Add(CreateExample());
        return command;
    }

    private static Command CreateValidate()
    {
        var file = new Argument<string>("FILE") { Description = "Server configuration file (YAML)" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON" };
        var command = new Command("validate", "Check a configuration file and print every error with its path");
        command.Arguments.Add(file);
        command.Options.Add(json);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var path = parseResult.GetValue(file)!;
            var result = ServerConfigLoader.Load(path);
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

    private static string ToJson(ConfigLoadResult result)
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
