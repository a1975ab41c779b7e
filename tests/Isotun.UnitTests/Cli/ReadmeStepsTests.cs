using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Isotun.Pki;
using Isotun.Protocol.Auth;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Cli;

/// <summary>
/// The README's "Using it" steps, read from README.md and run as written (without root) through the CLI's own verbs
/// in an empty directory: the config that `config example` prints validates next to the files the steps before it made,
/// names the certificate whose pin `pki pin` printed, and lets alice log into acme by password and by certificate.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ReadmeStepsTests
{
    private const string Password = "correct horse battery staple";

    [Fact]
    public async Task The_using_it_steps_make_a_config_that_validates_and_serves_the_pinned_certificate()
    {
        var steps = DocSteps.Read(RepositoryRoot.File("README.md"), "## Using it");
        Assert.Contains(steps, s => s[0] == "config" && s[1] == "validate");
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("pw.txt"), Password + "\n");

        string? pin = null, clientCertificate = null;
        foreach (var step in steps)
        {
            var (args, redirect) = DocSteps.SplitRedirect(step);
            // The README's `user add` asks on the terminal; a test has none, so it gives the password as a file.
            if (args[0] == "user" && args[1] == "add" && !args.Contains("--password-file")) args.AddRange(["--password-file", "pw.txt"]);

            var run = await ConsoleCapture.RunAsync(temp.Path, null, [.. args]);
            Assert.True(run.ExitCode == 0, $"./isotun {string.Join(' ', step)} exited {run.ExitCode}:\n{run.Out}\n{run.Error}");
            if (redirect is not null) File.WriteAllText(temp.File(redirect), run.Out);
            if (args[0] == "pki" && args[1] == "pin") pin = run.Out.Trim();
            if (args[0] == "pki" && args[1] == "client") clientCertificate = Regex.Match(run.Out, @"wrote (\S+\.crt)").Groups[1].Value;
        }

        Assert.StartsWith("pin-sha256:", pin);
        var configPath = temp.File("isotun.yaml");
        var loaded = ServerConfigLoader.Load(configPath);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        var config = loaded.Config!;
        Assert.Equal(pin, CertificatePin.ComputeFromFile(config.Tls.Certificate));

        // The server the config describes (its TUNs are not opened here) uses that certificate and lets alice in.
        await using var server = new VpnServer(config, NullLoggerFactory.Instance, new MemoryStateStore());
        Assert.Equal(pin, CertificatePin.Compute(server.ServerCertificate));
        var byPassword = server.Authenticator.Decide(
            new ClientAuthMessage("auth-reply", "v9.01", null, null, new Dictionary<string, string> { ["username"] = "alice", ["password"] = Password }, null, false),
            "/acme", new PeerInfo(null, null, null));
        Assert.True(byPassword.Success, $"{byPassword.Outcome}: {byPassword.Message}");
        Assert.Equal("acme", byPassword.Tenant!.Name);

        Assert.False(string.IsNullOrEmpty(clientCertificate));
        using var cert = X509CertificateLoader.LoadCertificateFromFile(Path.IsPathRooted(clientCertificate) ? clientCertificate : temp.File(clientCertificate));
        var byCertificate = server.Authenticator.Decide(
            new ClientAuthMessage("init", "v9.01", "https://vpn.example/acme", null, new Dictionary<string, string>(), null, false),
            "/acme", new PeerInfo(null, null, Authenticator.Inspect(cert)));
        Assert.True(byCertificate.Success, $"{byCertificate.Outcome}: {byCertificate.Message}");
        Assert.Equal("alice", byCertificate.User);
    }
}
