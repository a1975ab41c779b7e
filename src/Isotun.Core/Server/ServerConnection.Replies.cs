using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Metrics;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Cookies;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Protocol.Ip;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>Every reply of the HTTP phase, each under <c>limits.write-timeout</c>.</summary>
internal sealed partial class ServerConnection
{
    /// <summary>A reply of the HTTP phase that the peer did not take within <c>limits.write-timeout</c>.</summary>
    private sealed class WriteTimeoutException : Exception;

    /// <summary>Runs one reply's writes under <c>limits.write-timeout</c>; a peer that never reads makes it throw <see cref="WriteTimeoutException"/>.</summary>
    private async Task WithWriteDeadlineAsync(Func<CancellationToken, Task> write, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(server.Config.Limits.WriteTimeout);
        try
        {
            await write(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new WriteTimeoutException();
        }
    }

    private Task WriteXmlAsync(Stream tls, int status, string xml, string? setCookie, CancellationToken ct) =>
        WithWriteDeadlineAsync(t => WriteXmlNowAsync(tls, status, xml, setCookie, t), ct);

    private static async Task WriteXmlNowAsync(Stream tls, int status, string xml, string? setCookie, CancellationToken ct)
    {
        var body = Encoding.UTF8.GetBytes(xml);
        var sb = new StringBuilder();
        sb.Append("HTTP/1.1 ").Append(status).Append(status == 200 ? " OK" : status == 401 ? " Unauthorized" : " Error").Append("\r\n");
        sb.Append("Content-Type: text/xml\r\n");
        sb.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        sb.Append("X-Transcend-Version: 1\r\n");
        sb.Append("Cache-Control: no-store\r\n");
        if (setCookie is not null) sb.Append("Set-Cookie: ").Append(setCookie).Append("\r\n");
        sb.Append("\r\n");
        await tls.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()), ct).ConfigureAwait(false);
        await tls.WriteAsync(body, ct).ConfigureAwait(false);
        await tls.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Refuses a request: the status with "Connection: close", then the close counted and logged with <paramref name="detail"/>.</summary>
    private async Task RefuseAsync(Stream tls, int status, string reason, string detail, CancellationToken ct)
    {
        await WriteSimpleAsync(tls, status, reason, ct).ConfigureAwait(false);
        Close(CloseReason.BadRequest, detail);
    }

    /// <summary>A refusal with "Connection: close": best effort, since the connection ends after it either way.</summary>
    private async Task WriteSimpleAsync(Stream tls, int status, string reason, CancellationToken ct)
    {
        try
        {
            var text = $"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            await WithWriteDeadlineAsync(async t =>
            {
                await tls.WriteAsync(Encoding.ASCII.GetBytes(text), t).ConfigureAwait(false);
                await tls.FlushAsync(t).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or WriteTimeoutException) { }
    }

    private Task WriteServiceUnavailableAsync(Stream tls, string reason, CancellationToken ct) => WithWriteDeadlineAsync(async t =>
    {
        var text = $"HTTP/1.1 503 Service Unavailable\r\nX-Reason: {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        await tls.WriteAsync(Encoding.ASCII.GetBytes(text), t).ConfigureAwait(false);
        await tls.FlushAsync(t).ConfigureAwait(false);
    }, ct);
}
