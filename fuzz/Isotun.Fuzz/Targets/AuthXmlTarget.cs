using Isotun.Protocol.Auth;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// The same body as a client's config-auth POST (what the server parses) and as a server's answer (what the client
/// parses). A message comes back exactly on Ok, and what it carries stays within the parser's bounds.
/// </summary>
public sealed class AuthXmlTarget : IFuzzTarget
{
    public string Name => "auth";

    public string Description => "aggregate-auth XML (AuthXml.TryParseClientMessage and TryParseServerMessage)";

    public void Run(ReadOnlySpan<byte> input)
    {
        var client = AuthXml.TryParseClientMessage(input, out var clientMessage);
        Invariant.Defined(client);
        Invariant.That((client == AuthXmlResult.Ok) == (clientMessage is not null));
        Invariant.That(input.Length <= AuthXml.MaxBodyBytes || client == AuthXmlResult.TooLarge);
        if (clientMessage is not null)
        {
            Invariant.That(clientMessage.Type is not null && clientMessage.Fields.Count <= 32);
            _ = clientMessage.Username;
            _ = clientMessage.Password;
        }

        var server = AuthXml.TryParseServerMessage(input, out var serverMessage);
        Invariant.Defined(server);
        Invariant.That((server == AuthXmlResult.Ok) == (serverMessage is not null));
        if (serverMessage is not null)
        {
            Invariant.That(serverMessage.Type is not null);
            Invariant.That(serverMessage.Form is null || serverMessage.Form.Inputs.Count <= 32);
        }

        // Both directions load the document the same way, so an outcome of loading is the same for both.
        Invariant.That(!(FromLoading(client) || FromLoading(server)) || client == server);
    }

    private static bool FromLoading(AuthXmlResult result) =>
        result is AuthXmlResult.Empty or AuthXmlResult.TooLarge or AuthXmlResult.DtdProhibited or AuthXmlResult.NotConfigAuth;
}
