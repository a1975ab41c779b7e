using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Isotun.Linux;
using Isotun.Pki;

namespace Isotun.TestSupport;

/// <summary>The integration tests open a raw client from inside a client namespace, checking the server by the lab's pin.</summary>
public sealed partial class RawCstpClient
{
    /// <summary>TCP only, from inside <paramref name="ns"/>: nothing is sent yet.</summary>
    public static RawCstpClient ConnectTcp(string ns, IPEndPoint server) => new(new NetworkStream(Socket(ns, server), ownsSocket: true));

    /// <summary>TCP and TLS from inside <paramref name="ns"/>; the server certificate must match <paramref name="pin"/>.</summary>
    public static async Task<RawCstpClient> ConnectTlsAsync(string ns, IPEndPoint server, string pin)
    {
        var tls = new SslStream(new NetworkStream(Socket(ns, server), ownsSocket: true), leaveInnerStreamOpen: false);
        try
        {
            using var cts = new CancellationTokenSource(Guard);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = server.Address.ToString(),
                RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && CertificatePin.Matches(cert as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(cert.GetRawCertData()), pin),
            }, cts.Token);
            return new RawCstpClient(tls);
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    private static Socket Socket(string ns, IPEndPoint server) => NetworkNamespace.Run(ns, () =>
    {
        var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            s.Connect(server);
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    });
}
