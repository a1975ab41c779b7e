using System.Net;
using Isotun.Pki;
using Isotun.Security;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// Made once for all in-process tests (keys and password hashes are slow): a CA, a server certificate for
/// 127.0.0.1, a client certificate for OU <see cref="CertOu"/>, and password files. Tests only read them.
/// </summary>
public sealed class InProcessPki : IDisposable
{
    public const string User = "alice";
    public const string Password = "correct horse";
    public const string OtherUser = "bob";
    public const string OtherPassword = "battery staple";
    public const string CertOu = "certs";
    public const string CertUser = "carol";

    private readonly TempDirectory _dir = new();

    public InProcessPki()
    {
        var pki = new PkiDirectory(_dir.File("pki"));
        pki.InitCa();
        var server = pki.IssueServer("server", [IPAddress.Loopback], []);
        ServerCertificate = server.CertificatePath;
        ServerKey = server.KeyPath;
        Ca = pki.CaCertificatePath;
        var client = pki.IssueClient(CertOu, CertUser);
        ClientCertificate = client.CertificatePath;
        ClientKey = client.KeyPath;
        Passwords = _dir.File("users.passwd");
        PasswordFile.SetUser(Passwords, User, PasswordHasher.Hash(Password, PasswordHasher.MinIterations));
        OtherPasswords = _dir.File("others.passwd");
        PasswordFile.SetUser(OtherPasswords, OtherUser, PasswordHasher.Hash(OtherPassword, PasswordHasher.MinIterations));
    }

    public string Ca { get; }
    public string ServerCertificate { get; }
    public string ServerKey { get; }
    public string ClientCertificate { get; }
    public string ClientKey { get; }
    /// <summary>Holds <see cref="User"/>.</summary>
    public string Passwords { get; }
    /// <summary>Holds <see cref="OtherUser"/> only.</summary>
    public string OtherPasswords { get; }

    public void Dispose() => _dir.Dispose();
}

/// <summary>The in-process tests share the PKI and run one class at a time: each starts real TLS servers and threads.</summary>
[CollectionDefinition(Name)]
public sealed class InProcessCollection : ICollectionFixture<InProcessPki>
{
    public const string Name = "InProcess";
}
