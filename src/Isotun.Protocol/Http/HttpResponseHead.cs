namespace Isotun.Protocol.Http;

/// <summary>A parsed HTTP/1.x status line plus headers.</summary>
public sealed class HttpResponseHead
{
    /// <summary><c>HTTP/1.0</c> or <c>HTTP/1.1</c>.</summary>
    public required string Version { get; init; }

    /// <summary>Three-digit status code.</summary>
    public required int StatusCode { get; init; }

    /// <summary>Reason phrase (may be empty), e.g. <c>CONNECTED</c>.</summary>
    public required string Reason { get; init; }

    /// <summary>Header fields.</summary>
    public required HttpHeaders Headers { get; init; }
}
