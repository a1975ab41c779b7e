using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;
using Isotun.Protocol.Addressing;
using Isotun.Security;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A few tenants with their own users and CAs, built once in a temp directory. No kernel is touched:
/// <see cref="TenantRuntime"/>'s constructor only reads files; only Start() (never called here) makes
/// namespaces and TUNs, and Dispose() (never called here either) would remove them.
/// </summary>
/// <remarks>
/// alpha: users alice, CA "A". beta: user bob, CA "B". gamma: user carol, owns the server name
/// vpn.gamma.example, trusts the server-wide CA "S". delta and epsilon: no users, no CA of their own, both
/// admit the OU "shared".
/// </remarks>
public sealed class TenantWorld : IDisposable
{
    public const string AlicePassword = "alice-secret", BobPassword = "bob-secret", CarolPassword = "carol-secret";
    public static readonly string[] TenantNames = ["alpha", "beta", "gamma", "delta", "epsilon"];

    private readonly TempDirectory _dir = new();

    public TenantWorld()
    {
        var caA = new PkiDirectory(_dir.File("ca-a"));
        var caB = new PkiDirectory(_dir.File("ca-b"));
        var caS = new PkiDirectory(_dir.File("ca-s"));
        caA.InitCa("CA A");
        caB.InitCa("CA B");
        caS.InitCa("CA S");

        AliceCert = Load(caA.IssueClient("alpha", "alice"));
        AlphaCaNamingBeta = Load(caA.IssueClient("beta", "mallory"));
        AlphaCaNamingNobody = Load(caA.IssueClient("nosuch", "nobody"));
        BobCert = Load(caB.IssueClient("beta", "bob"));
        BetaCaNamingAlpha = Load(caB.IssueClient("alpha", "eve"));
        CarolCert = Load(caS.IssueClient("gamma", "carol"));
        SharedCert = Load(caS.IssueClient("shared", "sam"));

        var tenants = new Dictionary<string, TenantRuntime>(StringComparer.Ordinal)
        {
            ["alpha"] = Runtime(Tenant("alpha", "10.10.0.0/24", Users("alpha", ("alice", AlicePassword))) with { ClientCa = caA.CaCertificatePath }),
            ["beta"] = Runtime(Tenant("beta", "10.10.0.0/24", Users("beta", ("bob", BobPassword))) with { ClientCa = caB.CaCertificatePath }),
            ["gamma"] = Runtime(Tenant("gamma", "10.12.0.0/24", Users("gamma", ("carol", CarolPassword))) with { ServerNames = ["vpn.gamma.example"] }),
            ["delta"] = Runtime(Tenant("delta", "10.13.0.0/24", null) with { AllowedOus = ["shared"] }),
            ["epsilon"] = Runtime(Tenant("epsilon", "10.14.0.0/24", null) with { AllowedOus = ["shared"] }),
        };
        Tenants = tenants;
        Authenticator = new Authenticator(tenants, PemLoader.LoadBundle(caS.CaCertificatePath));
    }

    public IReadOnlyDictionary<string, TenantRuntime> Tenants { get; }
    public Authenticator Authenticator { get; }
    public X509Certificate2 AliceCert { get; }
    public X509Certificate2 AlphaCaNamingBeta { get; }
    public X509Certificate2 AlphaCaNamingNobody { get; }
    public X509Certificate2 BobCert { get; }
    public X509Certificate2 BetaCaNamingAlpha { get; }
    public X509Certificate2 CarolCert { get; }
    public X509Certificate2 SharedCert { get; }

    public string File(string name) => _dir.File(name);

    public static TenantConfig Tenant(string name, string pool, string? passwordFile) =>
        new(name, IpNetwork.Parse(pool), [], [], 1400, 30, 20, passwordFile, "isotun-" + name) { Namespace = "isotun-" + name };

    public static TenantRuntime Runtime(TenantConfig config, IStateStore? state = null) =>
        new(config, state ?? new MemoryStateStore(), NullLogger.Instance);

    public string Users(string tenant, params (string User, string Password)[] users)
    {
        var path = _dir.File(tenant + ".passwd");
        foreach (var (user, password) in users)
            PasswordFile.SetUser(path, user, PasswordHasher.Hash(password, PasswordHasher.MinIterations));
        return path;
    }

    private static X509Certificate2 Load(IssuedCertificate issued) => PemLoader.LoadCertificate(issued.CertificatePath);

    public void Dispose() => _dir.Dispose();
}
