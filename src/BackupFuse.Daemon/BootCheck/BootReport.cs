using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using BackupFuse.Daemon.Cli;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - The run's two summary files in the report directory: report.json (for scripts and monitoring) and index.html
//   (what an admin opens each morning): one static page, no script, no external resource, a card per backup point
//   with its thumbnail (linking to the full screen), verdict, detail, time and logs. Paths in both are relative to
//   the report directory, so the directory can be copied or served as it is.
// - Everything shown that came from the guest or the user (names, console lines) is HTML-encoded.
// - Written to a temporary name and renamed, so a browser or a monitor never reads half a file.

/// <summary>Writes report.json and index.html.</summary>
public static class BootReport
{
    /// <summary>File name of the JSON report.</summary>
    public const string JsonName = "report.json";

    /// <summary>File name of the HTML page.</summary>
    public const string HtmlName = "index.html";

    /// <summary>Writes both files into <paramref name="dir"/>.</summary>
    public static void Write(string dir, IReadOnlyList<BootResult> results, DateTime startedUtc, DateTime finishedUtc, string accel)
    {
        ArgumentNullException.ThrowIfNull(results);
        var points = new JsonArray();
        foreach (var r in results)
        {
            points.Add((JsonNode)new JsonObject
            {
                ["name"] = r.Name,
                ["input"] = r.Input,
                ["booted"] = r.Booted,
                ["verdict"] = r.Verdict,
                ["detail"] = r.Detail,
                ["seconds"] = r.Seconds is { } s ? Math.Round(s, 1) : null,
                ["firmware"] = r.Firmware,
                ["accel"] = r.Accel,
                ["screenshot"] = r.Screenshot,
                ["thumbnail"] = r.Thumbnail,
                ["serial_log"] = r.SerialLog,
                ["firmware_log"] = r.FirmwareLog,
                ["screen_text"] = r.ScreenText,
            });
        }

        var doc = new JsonObject
        {
            ["started_utc"] = startedUtc.ToString("O", CultureInfo.InvariantCulture),
            ["finished_utc"] = finishedUtc.ToString("O", CultureInfo.InvariantCulture),
            ["accel"] = accel,
            ["all_booted"] = results.Count > 0 && results.All(r => r.Booted),
            ["points"] = points,
        };
        WriteAtomic(Path.Combine(dir, JsonName), JsonOutput.Format(doc));
        WriteAtomic(Path.Combine(dir, HtmlName), Html(results, finishedUtc, accel));
    }

    private static string Html(IReadOnlyList<BootResult> results, DateTime finishedUtc, string accel)
    {
        int booted = results.Count(r => r.Booted);
        var h = new StringBuilder();
        h.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>BackupFuse boot check</title>\n<style>\n")
         .Append("body{font-family:sans-serif;margin:16px;background:#fff;color:#222}\n")
         .Append(".grid{display:flex;flex-wrap:wrap;gap:16px}\n")
         .Append(".card{border:1px solid #ccc;border-radius:6px;padding:8px;width:340px}\n")
         .Append(".card img{width:320px;display:block;border:1px solid #888;image-rendering:auto}\n")
         .Append(".ok{color:#070;font-weight:bold}.bad{color:#b00;font-weight:bold}\n")
         .Append(".detail{font-size:12px;word-break:break-word}.noimg{width:320px;height:200px;background:#eee;display:flex;align-items:center;justify-content:center}\n")
         .Append("</style></head><body>\n");
        h.Append(CultureInfo.InvariantCulture, $"<h1>Boot check: {booted} of {results.Count} booted</h1>\n");
        h.Append(CultureInfo.InvariantCulture, $"<p>{E(finishedUtc.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture))}, accelerator {E(accel)}</p>\n<div class=\"grid\">\n");
        foreach (var r in results)
        {
            h.Append("<div class=\"card\">");
            if (r.Thumbnail != null)
            {
                h.Append(CultureInfo.InvariantCulture, $"<a href=\"{A(r.Screenshot ?? r.Thumbnail)}\"><img src=\"{A(r.Thumbnail)}\" alt=\"last screen of {E(r.Name)}\"></a>");
            }
            else
            {
                h.Append("<div class=\"noimg\">no screen</div>");
            }

            string time = r.Seconds is { } s ? string.Create(CultureInfo.InvariantCulture, $"{s:0.0} s") : "-";
            h.Append(CultureInfo.InvariantCulture, $"<h3>{E(r.Name)}</h3><p class=\"{(r.Booted ? "ok" : "bad")}\">{E(r.Booted ? "booted" : "FAILED: " + r.Verdict)} ({time})</p>");
            h.Append(CultureInfo.InvariantCulture, $"<p class=\"detail\">{E(r.Detail)}<br>{E(r.Input)}<br>{E(r.Firmware ?? string.Empty)}</p><p class=\"detail\">");
            if (r.SerialLog != null)
            {
                h.Append(CultureInfo.InvariantCulture, $"<a href=\"{A(r.SerialLog)}\">serial log</a> ");
            }

            if (r.FirmwareLog != null)
            {
                h.Append(CultureInfo.InvariantCulture, $"<a href=\"{A(r.FirmwareLog)}\">firmware log</a>");
            }

            h.Append("</p></div>\n");
        }

        h.Append("</div></body></html>\n");
        return h.ToString();
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string A(string relativePath) => E(string.Join('/', relativePath.Split('/').Select(Uri.EscapeDataString)));

    private static void WriteAtomic(string path, string content)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, content);
        File.Move(tmp, path, overwrite: true);
    }
}
