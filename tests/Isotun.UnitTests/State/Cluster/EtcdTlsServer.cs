using Isotun.Pki;
using Isotun.State.Cluster;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// A real etcd that serves clients over https only and wants a client certificate (<c>--client-cert-auth</c>), with a
/// CA of its own that issued etcd's certificate (for 127.0.0.1) and a client's, and a second CA that signed neither.
/// The certificates are made by <see cref="PkiDirectory"/>, as <c>isotun pki</c> makes them (keys 0600).
/// </summary>
public sealed class EtcdTlsServer : IAsyncLifetime
{
    private readonly TempDirectory _dir = new();
    private EtcdServer? _etcd;

    /// <summary>The CA that issued etcd's and the client's certificates.</summary>
    public PkiDirectory Ca { get; }

    /// <summary>A CA that issued nothing etcd knows.</summary>
    public PkiDirectory OtherCa { get; }

    /// <summary>The client certificate and key etcd accepts.</summary>
    public IssuedCertificate Client { get; private set; } = null!;

    public EtcdTlsServer()
    {
        Ca = new PkiDirectory(_dir.File("ca"));
        OtherCa = new PkiDirectory(_dir.File("other-ca"));
    }

    /// <summary>Why the tests cannot run here, or null.</summary>
    public string? SkipReason => _etcd?.SkipReason;

    /// <summary>The etcd process itself, to stop and start it again.</summary>
    public EtcdServer Server => _etcd!;

    /// <summary>The https client URL on 127.0.0.1.</summary>
    public string Endpoint => _etcd!.Endpoint;

    /// <summary>A client of this etcd trusting <paramref name="ca"/>, with the client certificate or without; skips the test when etcd is not installed.</summary>
    public EtcdKeyValueStore Connect(PkiDirectory ca, bool clientCertificate = true, string? endpoint = null)
    {
        Skip.If(SkipReason is not null, SkipReason);
        return new EtcdKeyValueStore(endpoint ?? Endpoint, EtcdTls.Load(ca.CaCertificatePath, clientCertificate ? Client.CertificatePath : null, clientCertificate ? Client.KeyPath : null));
    }

    public async Task InitializeAsync()
    {
        Ca.InitCa("etcd test CA");
        OtherCa.InitCa("another CA");
        var server = Ca.IssueServer("127.0.0.1", [], []);
        Client = Ca.IssueClient("cluster", "node-1");
        _etcd = new EtcdServer { Tls = new EtcdServerTls(server.CertificatePath, server.KeyPath, Ca.CaCertificatePath) };
        await _etcd.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        if (_etcd is not null) await _etcd.DisposeAsync();
        _dir.Dispose();
    }
}
