using System.Text.Json;
using System.Text.Json.Nodes;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - `--json` documents are built as JsonObject trees (JsonNode's implicit conversions from string, number, bool,
//   Guid and DateTime), not serialized from anonymous types: reflection-based serialization is not available in
//   the NativeAOT binary we ship. Typed documents that are read back (the mount statistics) use a source-generated
//   context instead (Mounting/MountStatisticsJsonContext).

/// <summary>Writes the CLI's <c>--json</c> documents.</summary>
public static class JsonOutput
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The document, indented, as one string.</summary>
    public static string Format(JsonNode document) => document.ToJsonString(Indented);

    /// <summary>Writes the document, indented, to standard output.</summary>
    public static void Write(JsonNode document) => Console.WriteLine(Format(document));

    /// <summary>A JSON array of the given nodes.</summary>
    public static JsonArray Array<T>(IEnumerable<T> items, Func<T, JsonNode?> node) => new(items.Select(node).ToArray());

    /// <summary>A JSON array of strings.</summary>
    public static JsonArray Strings(IEnumerable<string> items) => Array(items, s => (JsonNode?)s);
}
