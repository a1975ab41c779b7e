using System.CommandLine;
using System.Net;
using Isotun.Pki;

namespace Isotun.Cli.Commands;

/// <summary><c>isotun pki</c>: a small ECDSA CA, server and client certificates, and pins for <c>openconnect --servercert</c>.</summary>
public static class PkiCommands
{
    private const int Ok = 0;
    private const int Failure = 1;
    private const int UsageError = 2;

    public static Command Create()
    {
        var command = new Command("pki", "Create a CA and issue server and client certificates");
        command.Subcommands.Add(CreateInit());
        command.Subcommands.Add(CreateServer());
        command.Subcommands.Add(CreateClient());
        command.Subcommands.Add(CreatePin());
        command.Subcommands.Add(CreateRevoke());
        return command;
    }

    private static Option<string> DirOption() =>
        new("--dir") { Description = "PKI directory (holds ca.crt and ca.key)", DefaultValueFactory = _ => "pki" };

    private static Option<bool> ForceOption() =>
        new("--force") { Description = "Replace existing files" };

    private static Command CreateInit()
    {
        var dir = DirOption();
        var cn = new Option<string>("--cn") { Description = "CA common name", DefaultValueFactory = _ => "Isotun CA" };
        var force = ForceOption();
        var command = new Command("init", "Create the CA (ca.crt, ca.key)");
        command.Options.Add(dir);
        command.Options.Add(cn);
        command.Options.Add(force);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            return Run(error, () =>
            {
                var pki = new PkiDirectory(parseResult.GetValue(dir)!);
                pki.InitCa(parseResult.GetValue(cn)!, parseResult.GetValue(force));
                output.WriteLine($"wrote {pki.CaCertificatePath}");
                output.WriteLine($"wrote {pki.CaKeyPath} (mode 0600)");
                return Ok;
            });
        });
        return command;
    }

    private static Command CreateServer()
    {
        var name = new Option<string>("--name") { Description = "Server DNS name or IP (CN and SAN)", Required = true };
        var ips = new Option<string[]>("--ip") { Description = "IP address SAN (repeatable)" };
        var dnsNames = new Option<string[]>("--dns") { Description = "Extra DNS name SAN (repeatable)" };
        var dir = DirOption();
        var force = ForceOption();
        var command = new Command("server", "Issue a server certificate signed by the CA");
        command.Options.Add(name);
        command.Options.Add(ips);
        command.Options.Add(dnsNames);
        command.Options.Add(dir);
        command.Options.Add(force);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var addresses = new List<IPAddress>();
            foreach (var text in parseResult.GetValue(ips) ?? [])
            {
                if (!PkiDirectory.TryParseIp(text, out var address))
                {
                    error.WriteLine($"isotun pki server: --ip '{text}' is not an IP address");
                    return UsageError;
                }

                addresses.Add(address);
            }

            return Run(error, () =>
            {
                var pki = new PkiDirectory(parseResult.GetValue(dir)!);
                var issued = pki.IssueServer(
                    parseResult.GetValue(name)!, addresses, parseResult.GetValue(dnsNames) ?? [], parseResult.GetValue(force));
                output.WriteLine($"wrote {issued.CertificatePath}");
                output.WriteLine($"wrote {issued.KeyPath} (mode 0600)");
                output.WriteLine(issued.Pin);
                return Ok;
            });
        });
        return command;
    }

    private static Command CreateClient()
    {
        var tenant = new Option<string>("--tenant") { Description = "Tenant name (certificate OU)", Required = true };
        var user = new Option<string>("--user") { Description = "User name (certificate UID and CN)", Required = true };
        var dir = DirOption();
        var force = ForceOption();
        var command = new Command("client", "Issue a client certificate for a tenant's user");
        command.Options.Add(tenant);
        command.Options.Add(user);
        command.Options.Add(dir);
        command.Options.Add(force);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            return Run(error, () =>
            {
                var pki = new PkiDirectory(parseResult.GetValue(dir)!);
                var issued = pki.IssueClient(parseResult.GetValue(tenant)!, parseResult.GetValue(user)!, parseResult.GetValue(force));
                output.WriteLine($"wrote {issued.CertificatePath}");
                output.WriteLine($"wrote {issued.KeyPath} (mode 0600)");
                return Ok;
            });
        });
        return command;
    }

    private static Command CreateRevoke()
    {
        var certificate = new Argument<string>("CERT") { Description = "The client certificate to revoke (PEM), issued by this CA" };
        var dir = DirOption();
        var command = new Command("revoke", "Add a certificate to the CA's revocation list (ca.crl); give it to tenants as client-crl, then reload");
        command.Arguments.Add(certificate);
        command.Options.Add(dir);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            return Run(error, () =>
            {
                var pki = new PkiDirectory(parseResult.GetValue(dir)!);
                int count = pki.Revoke(parseResult.GetValue(certificate)!);
                output.WriteLine($"wrote {pki.CrlPath} ({count} revoked certificate(s)); `kill -HUP` or `isotun reload` ends the sessions of newly revoked ones");
                return Ok;
            });
        });
        return command;
    }

    private static Command CreatePin()
    {
        var certificate = new Argument<string>("CERT") { Description = "Certificate file, PEM or DER" };
        var command = new Command("pin", "Print the pin-sha256: pin of a certificate, for openconnect --servercert");
        command.Arguments.Add(certificate);
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            return Run(error, () =>
            {
                output.WriteLine(CertificatePin.ComputeFromFile(parseResult.GetValue(certificate)!));
                return Ok;
            });
        });
        return command;
    }

    private static int Run(TextWriter error, Func<int> action)
    {
        try
        {
            return action();
        }
        catch (PkiException ex)
        {
            error.WriteLine($"isotun pki: {ex.Message}");
            return ex.Error == PkiError.BadInput ? UsageError : Failure;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"isotun pki: {ex.Message}");
            return Failure;
        }
        catch (ArgumentException ex)
        {
            error.WriteLine($"isotun pki: {ex.Message}");
            return UsageError;
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            error.WriteLine($"isotun pki: {ex.Message}");
            return Failure;
        }
    }
}
