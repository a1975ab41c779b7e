using System.Text;
using System.Xml;

namespace Isotun.Protocol.Auth;

public static partial class AuthXml
{
    private const string Declaration = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    private const string ServerVersion = "isotun";
    private const string DeviceId = "linux-64";

    private static readonly XmlWriterSettings WriterSettings = new()
    {
        // The declaration is written by hand: XmlWriter over a StringBuilder would claim UTF-16.
        OmitXmlDeclaration = true,
        Indent = false,
        ConformanceLevel = ConformanceLevel.Document,
        NewLineHandling = NewLineHandling.Entitize,
    };

    /// <summary>
    /// Server auth-request with a login form. <paramref name="opaque"/> is written raw and must be well-formed XML
    /// (the server's own state, which the client echoes).
    /// </summary>
    public static string BuildAuthRequest(AuthForm form, string? opaque = null)
    {
        ArgumentNullException.ThrowIfNull(form);
        return Build(w =>
        {
            StartConfigAuth(w, "auth-request", "sg", ServerVersion);
            w.WriteStartElement("auth");
            w.WriteAttributeString("id", "main");
            if (form.Message is not null)
            {
                w.WriteElementString("message", Clean(form.Message));
            }

            if (form.Error is not null)
            {
                w.WriteElementString("error", Clean(form.Error));
            }

            w.WriteStartElement("form");
            w.WriteAttributeString("method", "post");
            w.WriteAttributeString("action", Clean(form.Action));
            foreach (var input in form.Inputs)
            {
                w.WriteStartElement("input");
                w.WriteAttributeString("type", Clean(input.Type));
                w.WriteAttributeString("name", Clean(input.Name));
                w.WriteAttributeString("label", Clean(input.Label));
                w.WriteEndElement();
            }

            if (form.Select is { } select)
            {
                w.WriteStartElement("select");
                w.WriteAttributeString("name", Clean(select.Name));
                w.WriteAttributeString("label", Clean(select.Label));
                foreach (var option in select.Options)
                {
                    w.WriteStartElement("option");
                    w.WriteAttributeString("value", Clean(option.Value));
                    w.WriteString(Clean(option.Label));
                    w.WriteEndElement();
                }

                w.WriteEndElement();
            }

            w.WriteEndElement(); // form
            w.WriteEndElement(); // auth
            if (!string.IsNullOrEmpty(opaque))
            {
                w.WriteRaw(opaque);
            }

            w.WriteEndElement(); // config-auth
        });
    }

    /// <summary>Server "complete" document sent with the <c>webvpn</c> cookie after a successful login.</summary>
    public static string BuildComplete(string? banner = null, string? sessionToken = null) => Build(w =>
    {
        StartConfigAuth(w, "complete", "sg", ServerVersion);
        w.WriteStartElement("auth");
        w.WriteAttributeString("id", "success");
        w.WriteElementString("title", "SSL VPN Service");
        if (banner is not null)
        {
            w.WriteElementString("banner", Clean(banner));
        }

        w.WriteEndElement(); // auth
        if (sessionToken is not null)
        {
            w.WriteElementString("session-token", Clean(sessionToken));
        }

        w.WriteEndElement(); // config-auth
    });

    /// <summary>Client init document, as openconnect 9 sends it.</summary>
    public static string BuildInit(string version, string groupAccess, string? groupSelect) => Build(w =>
    {
        StartConfigAuth(w, "init", "vpn", version);
        w.WriteElementString("device-id", DeviceId);
        w.WriteElementString("group-access", Clean(groupAccess));
        if (groupSelect is not null)
        {
            w.WriteElementString("group-select", Clean(groupSelect));
        }

        w.WriteEndElement(); // config-auth
    });

    /// <summary>
    /// Client auth-reply. Each field becomes <c>&lt;name&gt;value&lt;/name&gt;</c> inside <c>&lt;auth&gt;</c>; names come from
    /// the server's form, so a name that is not a valid XML name is skipped rather than producing broken XML.
    /// <paramref name="opaque"/> is echoed raw; it should come from <see cref="ServerAuthMessage.Opaque"/> (already well-formed).
    /// </summary>
    public static string BuildReply(string version, IReadOnlyList<KeyValuePair<string, string>> fields, string? groupSelect, string? opaque)
    {
        ArgumentNullException.ThrowIfNull(fields);
        return Build(w =>
        {
            StartConfigAuth(w, "auth-reply", "vpn", version);
            w.WriteElementString("device-id", DeviceId);
            if (!string.IsNullOrEmpty(opaque))
            {
                w.WriteRaw(opaque);
            }

            w.WriteStartElement("auth");
            foreach (var field in fields)
            {
                if (IsValidElementName(field.Key))
                {
                    w.WriteElementString(field.Key, Clean(field.Value));
                }
            }

            w.WriteEndElement(); // auth
            if (groupSelect is not null)
            {
                w.WriteElementString("group-select", Clean(groupSelect));
            }

            w.WriteEndElement(); // config-auth
        });
    }

    private static string Build(Action<XmlWriter> body)
    {
        var sb = new StringBuilder(512);
        sb.Append(Declaration);
        using (var writer = XmlWriter.Create(sb, WriterSettings))
        {
            body(writer);
        }

        return sb.ToString();
    }

    private static void StartConfigAuth(XmlWriter w, string type, string who, string version)
    {
        w.WriteStartElement("config-auth");
        w.WriteAttributeString("client", "vpn");
        w.WriteAttributeString("type", type);
        w.WriteAttributeString("aggregate-auth-version", "2");
        w.WriteStartElement("version");
        w.WriteAttributeString("who", who);
        w.WriteString(Clean(version));
        w.WriteEndElement();
    }

    // Values may carry peer-supplied text (usernames, server labels); characters XML cannot represent
    // are replaced so the writer never throws and the output stays well-formed.
    private static string Clean(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return string.Empty;
        }

        int i = 0;
        while (i < value.Length && IsXmlCharAt(value, i, out int width))
        {
            i += width;
        }

        if (i == value.Length)
        {
            return value;
        }

        var sb = new StringBuilder(value.Length);
        for (i = 0; i < value.Length;)
        {
            if (IsXmlCharAt(value, i, out int width))
            {
                sb.Append(value, i, width);
                i += width;
            }
            else
            {
                sb.Append('\uFFFD');
                i++;
            }
        }

        return sb.ToString();
    }

    private static bool IsXmlCharAt(string value, int index, out int width)
    {
        char c = value[index];
        if (char.IsHighSurrogate(c) && index + 1 < value.Length && XmlConvert.IsXmlSurrogatePair(value[index + 1], c))
        {
            width = 2;
            return true;
        }

        width = 1;
        return XmlConvert.IsXmlChar(c);
    }

    private static bool IsValidElementName(string? name)
    {
        if (string.IsNullOrEmpty(name) || !XmlConvert.IsStartNCNameChar(name[0]))
        {
            return false;
        }

        foreach (char c in name.AsSpan(1))
        {
            if (!XmlConvert.IsNCNameChar(c))
            {
                return false;
            }
        }

        return true;
    }
}
