using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Isotun.Protocol.Auth;

/// <summary>
/// AnyConnect "aggregate auth" XML (<c>&lt;config-auth&gt;</c>): hardened parsers for both directions,
/// and builders (in <c>AuthXml.Builders.cs</c>). The parsers never throw and never process a DTD,
/// so entity expansion and external entity tricks are impossible.
/// </summary>
public static partial class AuthXml
{
    /// <summary>Largest body accepted, in bytes.</summary>
    public const int MaxBodyBytes = 64 * 1024;

    // Real documents are about 4 levels deep with a handful of fields; these leave generous headroom.
    private const int MaxDepth = 16;
    private const int MaxElements = 1024;
    private const int MaxFields = 32;

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parses what a client POSTed (init, auth-reply, logout, ...).</summary>
    public static AuthXmlResult TryParseClientMessage(ReadOnlySpan<byte> body, out ClientAuthMessage? message)
    {
        message = null;
        var result = TryLoad(body, out var root);
        if (result != AuthXmlResult.Ok)
        {
            return result;
        }

        string? type = root!.Attribute("type")?.Value;
        if (type is null)
        {
            return AuthXmlResult.Malformed;
        }

        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var auth = Child(root, "auth");
        if (auth is not null)
        {
            foreach (var field in auth.Elements())
            {
                if (fields.Count >= MaxFields)
                {
                    return AuthXmlResult.Malformed;
                }

                fields.TryAdd(field.Name.LocalName, field.Value);
            }
        }

        message = new ClientAuthMessage(
            type,
            Child(root, "version")?.Value,
            Child(root, "group-access")?.Value,
            Child(root, "group-select")?.Value,
            fields,
            OuterXml(Child(root, "opaque")),
            Child(root, "client-cert-fail") is not null);
        return AuthXmlResult.Ok;
    }

    /// <summary>Parses what a server answered (auth-request, complete, ...).</summary>
    public static AuthXmlResult TryParseServerMessage(ReadOnlySpan<byte> body, out ServerAuthMessage? message)
    {
        message = null;
        var result = TryLoad(body, out var root);
        if (result != AuthXmlResult.Ok)
        {
            return result;
        }

        string? type = root!.Attribute("type")?.Value;
        if (type is null)
        {
            return AuthXmlResult.Malformed;
        }

        var auth = Child(root, "auth");
        var formElement = Child(auth, "form");

        // ocserv puts <message>/<error> beside <form>; accept them inside it too.
        string? text = Child(auth, "message")?.Value ?? Child(formElement, "message")?.Value;
        string? error = Child(auth, "error")?.Value ?? Child(formElement, "error")?.Value;

        AuthForm? form = null;
        if (formElement is not null || text is not null || error is not null)
        {
            var inputs = new List<AuthInput>();
            AuthSelect? select = null;
            if (formElement is not null)
            {
                foreach (var element in formElement.Elements())
                {
                    string local = element.Name.LocalName;
                    if (local == "input")
                    {
                        string? name = element.Attribute("name")?.Value;
                        if (string.IsNullOrEmpty(name))
                        {
                            continue;
                        }

                        if (inputs.Count >= MaxFields)
                        {
                            return AuthXmlResult.Malformed;
                        }

                        inputs.Add(new AuthInput(element.Attribute("type")?.Value ?? "text", name, element.Attribute("label")?.Value ?? string.Empty));
                    }
                    else if (local == "select" && select is null)
                    {
                        select = ReadSelect(element);
                    }
                }
            }

            form = new AuthForm(formElement?.Attribute("action")?.Value ?? string.Empty, text, error, inputs, select);
        }

        message = new ServerAuthMessage(
            type,
            auth?.Attribute("id")?.Value,
            form,
            Child(root, "session-token")?.Value,
            Child(root, "client-cert-request") is not null,
            OuterXml(Child(root, "opaque")),
            Child(auth, "banner")?.Value ?? Child(root, "banner")?.Value);
        return AuthXmlResult.Ok;
    }

    private static AuthSelect ReadSelect(XElement element)
    {
        var options = new List<AuthOption>();
        foreach (var option in element.Elements())
        {
            if (option.Name.LocalName == "option")
            {
                // ocserv sends <option>name</option> without a value attribute; the label is then the value.
                string label = option.Value;
                options.Add(new AuthOption(option.Attribute("value")?.Value ?? label, label));
            }
        }

        return new AuthSelect(element.Attribute("name")?.Value ?? string.Empty, element.Attribute("label")?.Value ?? string.Empty, options);
    }

    // Decodes, bounds and loads the document; root is the <config-auth> element on Ok.
    private static AuthXmlResult TryLoad(ReadOnlySpan<byte> body, out XElement? root)
    {
        root = null;
        if (body.Length > MaxBodyBytes)
        {
            return AuthXmlResult.TooLarge;
        }

        if (body.StartsWith(Utf8Bom))
        {
            body = body[3..];
        }

        if (body.Trim(" \t\r\n"u8).IsEmpty)
        {
            return AuthXmlResult.Empty;
        }

        string text;
        try
        {
            text = StrictUtf8.GetString(body);
        }
        catch (DecoderFallbackException)
        {
            return AuthXmlResult.Malformed;
        }

        // Refuse any DTD up front, so no entity declaration is ever seen by a parser. Prohibit below is the backstop.
        if (text.Contains("<!DOCTYPE", StringComparison.OrdinalIgnoreCase))
        {
            return AuthXmlResult.DtdProhibited;
        }

        try
        {
            // Pass 1 enforces depth and element-count bounds with the streaming reader, so the tree
            // built in pass 2 is always small and shallow.
            using (var reader = CreateReader(text))
            {
                int elements = 0;
                bool sawRoot = false;
                while (reader.Read())
                {
                    if (reader.NodeType != XmlNodeType.Element)
                    {
                        continue;
                    }

                    if (!sawRoot)
                    {
                        sawRoot = true;
                        if (reader.LocalName != "config-auth")
                        {
                            return AuthXmlResult.NotConfigAuth;
                        }
                    }

                    if (reader.Depth >= MaxDepth || ++elements > MaxElements)
                    {
                        return AuthXmlResult.Malformed;
                    }
                }
            }

            using (var reader = CreateReader(text))
            {
                root = XDocument.Load(reader).Root;
            }
        }
        catch (XmlException e) when (e.Message.Contains("DTD", StringComparison.Ordinal))
        {
            return AuthXmlResult.DtdProhibited;
        }
        catch (XmlException)
        {
            return AuthXmlResult.Malformed;
        }
        catch (InvalidOperationException)
        {
            return AuthXmlResult.Malformed;
        }

        return root is null ? AuthXmlResult.Malformed : AuthXmlResult.Ok;
    }

    private static XmlReader CreateReader(string text) => XmlReader.Create(new StringReader(text), new XmlReaderSettings
    {
        DtdProcessing = DtdProcessing.Prohibit,
        XmlResolver = null,

        // 0 would mean "unlimited" in .NET; with DTDs prohibited only the predefined entities remain anyway.
        MaxCharactersFromEntities = 1024,
        MaxCharactersInDocument = MaxBodyBytes,
        IgnoreProcessingInstructions = true,
        IgnoreComments = true,
        IgnoreWhitespace = true,
        CloseInput = true,
    });

    private static XElement? Child(XElement? parent, string localName)
    {
        if (parent is null)
        {
            return null;
        }

        foreach (var element in parent.Elements())
        {
            if (element.Name.LocalName == localName)
            {
                return element;
            }
        }

        return null;
    }

    private static string? OuterXml(XElement? element) => element?.ToString(SaveOptions.DisableFormatting);
}
