using System.Net;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>Issue 2: with no PKI files, the server makes them on first start (and never overwrites them later).</summary>
public sealed class FirstStartTests
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>One host-namespace tenant on 127.0.0.1:4443, admin off, no PKI files yet.</summary>
    /// <summary>A config in <paramref name="temp"/>; <paramref name="tls"/> adds lines to its tls section.</summary>
    internal static ServerConfig Config(TempDirectory temp, string tls = "", string certificate = "pki/server.crt", string key = "pki/server.key")
    {
        var path = temp.File("isotun.yaml");
        File.WriteAllText(path, $$"""
            listen: 127.0.0.1:4443
            tls:
              certificate: {{certificate}}
              key: {{key}}
              generate-ips: [198.18.0.1]
              {{tls}}
            admin:
              listen: off
            tenants:
              - name: t1
                namespace: host
                pool: 10.10.0.0/24
            """);
        var loaded = ServerConfigLoader.Load(path);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        return loaded.Config!;
    }

    [Fact]
    public async Task A_server_without_pki_files_generates_a_ca_a_certificate_and_secret_keys()
    {
        using var temp = new TempDirectory();
        var config = Config(temp);
        Assert.False(File.Exists(temp.File("pki/server.crt")));

        await using (var server = new VpnServer(config, NullLoggerFactory.Instance, new MemoryStateStore()))
        {
            Assert.True(server.ServerCertificate.HasPrivateKey);
            var san = server.ServerCertificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
            Assert.Contains(IPAddress.Parse("198.18.0.1"), san.EnumerateIPAddresses());
            Assert.Equal(CertificatePin.ComputeFromFile(temp.File("pki/server.crt")), CertificatePin.Compute(server.ServerCertificate));
        }

        foreach (var secret in new[] { "pki/server.key", "pki/ca.key", "cookie.key" })
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(temp.File(secret)));
        Assert.True(File.Exists(temp.File("pki/ca.crt")));
    }

    /// <summary>
    /// The key configured in a directory of its own that does not exist yet: made (the owner's alone) and the key put
    /// there, so a second start finds both files; before, the start failed and left the certificate without its key.
    /// </summary>
    [Fact]
    public async Task A_generated_key_goes_into_a_directory_of_its_own_made_for_it()
    {
        using var temp = new TempDirectory();
        var config = Config(temp, certificate: "certs/server.crt", key: "private/server.key");
        string first;
        await using (var server = new VpnServer(config, NullLoggerFactory.Instance, new MemoryStateStore()))
            first = CertificatePin.Compute(server.ServerCertificate);
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(temp.File("private/server.key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(temp.File("private")));
        await using (var again = new VpnServer(config, NullLoggerFactory.Instance, new MemoryStateStore()))
            Assert.Equal(first, CertificatePin.Compute(again.ServerCertificate));
    }

    [Fact]
    public async Task A_second_start_keeps_the_generated_certificate()
    {
        using var temp = new TempDirectory();
        var config = Config(temp);
        string first;
        await using (var server = new VpnServer(config, NullLoggerFactory.Instance, new MemoryStateStore()))
            first = CertificatePin.Compute(server.ServerCertificate);
        await using (var again = new VpnServer(config, NullLoggerFactory.Instance, new MemoryStateStore()))
            Assert.Equal(first, CertificatePin.Compute(again.ServerCertificate));
    }
}
