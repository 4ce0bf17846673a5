//! Integration tests for theme loading (`wavelift::tui::theme`) and the shipped themes.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::BorderType;
use wavelift::tui::theme::{
    builtin_names, fallback, honour_no_color, Element, Slot, Theme, ThemeError, ThemeSet,
};

const SHIPPED: [&str; 4] = ["default", "light", "high-contrast", "prod-red"];

fn themes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("themes")
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, text).expect("write fixture");
    path
}

fn err_of(text: &str, origin: &str) -> ThemeError {
    match Theme::from_toml_str(text, origin) {
        Ok(theme) => panic!("expected an error, got theme {}", theme.name()),
        Err(e) => e,
    }
}

fn same_look(a: &Theme, b: &Theme) -> bool {
    Slot::ALL.iter().all(|s| a.slot(*s) == b.slot(*s))
        && Element::ALL.iter().all(|w| a.style(*w) == b.style(*w))
        && a.border_type() == b.border_type()
        && a.is_dark() == b.is_dark()
}

// ---------------------------------------------------------------------------------------
// Shipped themes
// ---------------------------------------------------------------------------------------

#[test]
fn shipped_themes_are_builtin_and_resolve() {
    assert_eq!(builtin_names(), SHIPPED.to_vec());
    let set = ThemeSet::builtin();
    for name in SHIPPED {
        let theme = set
            .resolve(name)
            .unwrap_or_else(|e| panic!("built-in {name}: {e}"));
        assert_eq!(theme.name(), name);
        assert!(theme.description().is_some(), "{name} has no description");
        assert!(theme.origin().contains(&format!("{name}.toml")));
        assert!(!theme.is_no_color());
    }
}

#[test]
fn shipped_files_on_disk_load_and_match_the_embedded_copies() {
    for name in SHIPPED {
        let path = themes_dir().join(format!("{name}.toml"));
        let from_disk = Theme::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let builtin = Theme::builtin(name).expect("built-in");
        assert!(
            same_look(&from_disk, &builtin),
            "{name}: file on disk and embedded copy differ"
        );
        assert_eq!(from_disk.origin(), path.display().to_string());
    }
    // every *.toml in themes/ is a built-in (no forgotten include_str!)
    let mut on_disk: Vec<String> = fs::read_dir(themes_dir())
        .expect("themes dir")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != "toml" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    on_disk.sort();
    let mut builtin: Vec<String> = SHIPPED.iter().map(|s| s.to_string()).collect();
    builtin.sort();
    assert_eq!(on_disk, builtin);
}

#[test]
fn shipped_themes_set_every_slot_without_relying_on_completion() {
    // default is the root; light and high-contrast are standalone and must not borrow
    // dark colours from default by accident.
    for name in ["default", "light", "high-contrast"] {
        let text = fs::read_to_string(themes_dir().join(format!("{name}.toml"))).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert!(table.get("base").is_none(), "{name} should be standalone");
        let slots = table["slots"].as_table().unwrap();
        for slot in Slot::ALL {
            assert!(slots.contains_key(slot.key()), "{name} misses slot {slot}");
        }
    }
}

#[test]
fn mode_badges_are_distinct_in_every_theme() {
    for name in SHIPPED {
        let t = Theme::builtin(name).unwrap();
        let modes = [Slot::ModeLive, Slot::ModeDryRun, Slot::ModeRehearsal].map(|s| t.slot(s));
        assert_ne!(modes[0], modes[1], "{name}: live vs dry-run");
        assert_ne!(modes[0], modes[2], "{name}: live vs rehearsal");
        assert_ne!(modes[1], modes[2], "{name}: dry-run vs rehearsal");
        let styles = [
            Element::ModeLive,
            Element::ModeDryRun,
            Element::ModeRehearsal,
        ]
        .map(|w| t.style(w));
        assert_ne!(styles[0], styles[1]);
        assert_ne!(styles[1], styles[2]);
        assert_eq!(styles[0].bg, Some(modes[0]));
    }
}

fn luminance(c: Color) -> Option<f64> {
    let Color::Rgb(r, g, b) = c else { return None };
    let lin = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    Some(0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b))
}

fn contrast(a: Color, b: Color) -> Option<f64> {
    let (la, lb) = (luminance(a)?, luminance(b)?);
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    Some((hi + 0.05) / (lo + 0.05))
}

#[test]
fn true_colour_themes_have_readable_contrast() {
    for name in ["default", "light", "prod-red"] {
        let t = Theme::builtin(name).unwrap();
        let bg = t.slot(Slot::Bg);
        let text_slots = [
            Slot::Fg,
            Slot::Accent,
            Slot::Muted,
            Slot::Success,
            Slot::Warning,
            Slot::Error,
            Slot::Info,
            Slot::Title,
            Slot::BorderFocused,
        ];
        for slot in text_slots {
            let ratio = contrast(t.slot(slot), bg).expect("rgb colours");
            assert!(ratio >= 4.5, "{name}: {slot} on bg has contrast {ratio:.2}");
        }
        // coloured badges, the banner and the selected row
        for widget in [
            Element::TableSelected,
            Element::Banner,
            Element::ModeLive,
            Element::ModeDryRun,
            Element::ModeRehearsal,
            Element::Header,
        ] {
            let s = t.style(widget);
            let (fg, bg) = (s.fg.unwrap(), s.bg.unwrap_or(bg));
            let ratio = contrast(fg, bg).expect("rgb colours");
            assert!(ratio >= 4.5, "{name}: {widget} has contrast {ratio:.2}");
        }
        // the gauge's filled part is visible against its empty part
        let ratio = contrast(t.slot(Slot::Gauge), t.slot(Slot::GaugeBg)).unwrap();
        assert!(ratio >= 3.0, "{name}: gauge contrast {ratio:.2}");
    }
}

#[test]
fn light_theme_is_light() {
    let t = Theme::builtin("light").unwrap();
    assert!(!t.is_dark());
    assert_eq!(t.slot(Slot::Bg), Color::Rgb(0xff, 0xff, 0xff));
    assert!(t
        .style(Element::TableSelected)
        .add_modifier
        .contains(Modifier::BOLD));
    assert!(Theme::builtin("default").unwrap().is_dark());
}

#[test]
fn high_contrast_uses_pure_colours_and_bold_thick_borders() {
    let t = Theme::builtin("high-contrast").unwrap();
    assert_eq!(t.slot(Slot::Fg), Color::White);
    assert_eq!(t.slot(Slot::Bg), Color::Black);
    assert_eq!(t.border_type(), BorderType::Thick);
    for w in [Element::Border, Element::BorderFocused] {
        assert!(t.style(w).add_modifier.contains(Modifier::BOLD), "{w}");
    }
    for s in Slot::ALL {
        assert!(
            !matches!(t.slot(*s), Color::Rgb(..) | Color::Indexed(_)),
            "{s} should be a named ANSI colour"
        );
    }
}

#[test]
fn prod_red_inherits_from_default() {
    let default = Theme::default();
    let prod = Theme::builtin("prod-red").unwrap();
    assert_ne!(prod.slot(Slot::Accent), default.slot(Slot::Accent));
    // untouched slots come from default
    for s in [
        Slot::Fg,
        Slot::Bg,
        Slot::Success,
        Slot::ModeLive,
        Slot::BadgeFg,
    ] {
        assert_eq!(prod.slot(s), default.slot(s), "{s}");
    }
    assert_eq!(prod.border_type(), default.border_type());
    assert!(prod.is_dark());
    // widgets using accent follow the new accent
    assert_eq!(
        prod.style(Element::TableHeader).fg,
        Some(prod.slot(Slot::Accent))
    );
    // the header override
    assert_eq!(
        prod.style(Element::Header),
        Style::default()
            .fg(Color::Rgb(0xff, 0xff, 0xff))
            .bg(Color::Rgb(0xb4, 0x24, 0x3c))
            .add_modifier(Modifier::BOLD)
    );
}

// ---------------------------------------------------------------------------------------
// Inheritance
// ---------------------------------------------------------------------------------------

#[test]
fn inheritance_overrides_and_keeps_base_values() {
    let mut set = ThemeSet::builtin();
    let name = set
        .insert_toml(
            r##"
name = "child"
base = "light"
[slots]
accent = "#ff0000"
[widgets.table_selected]
underline = true
[widgets]
footer = "accent"
"##,
            "mem/child.toml",
        )
        .unwrap();
    assert_eq!(name, "child");
    let child = set.resolve("child").unwrap();
    let light = Theme::builtin("light").unwrap();
    assert_eq!(child.slot(Slot::Accent), Color::Rgb(255, 0, 0));
    assert_eq!(child.slot(Slot::Error), light.slot(Slot::Error));
    assert_eq!(child.slot(Slot::Bg), light.slot(Slot::Bg));
    assert!(!child.is_dark(), "dark = false comes from light");
    // light's `bold` on table_selected is kept, the child's `underline` is added
    let sel = child.style(Element::TableSelected);
    assert!(sel
        .add_modifier
        .contains(Modifier::BOLD | Modifier::UNDERLINED));
    assert_eq!(sel.bg, Some(light.slot(Slot::Highlight)));
    // short form: a string is the fg
    assert_eq!(child.style(Element::Footer).fg, Some(Color::Rgb(255, 0, 0)));
    assert_eq!(child.name(), "child");
    assert_eq!(child.origin(), "mem/child.toml");
}

#[test]
fn multi_level_inheritance_through_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "base = \"b\"\n[slots]\nerror = \"red\"\n",
    );
    write(
        dir.path(),
        "b.toml",
        "base = \"prod-red\"\n[slots]\nsuccess = \"green\"\n",
    );
    let set = ThemeSet::load_dir(dir.path()).unwrap();
    let a = set.resolve("a").unwrap();
    let prod = Theme::builtin("prod-red").unwrap();
    assert_eq!(a.name(), "a", "name defaults to the file stem");
    assert_eq!(a.slot(Slot::Error), Color::Red);
    assert_eq!(a.slot(Slot::Success), Color::Green);
    assert_eq!(a.slot(Slot::Accent), prod.slot(Slot::Accent));
    assert_eq!(a.style(Element::Header), prod.style(Element::Header));
    // Theme::load resolves bases against sibling files too
    let loaded = Theme::load(dir.path().join("a.toml")).unwrap();
    assert!(same_look(&a, &loaded));
}

#[test]
fn theme_without_base_is_completed_from_builtin_default() {
    let t = Theme::from_toml_str("[slots]\naccent = \"red\"\n", "themes/partial.toml").unwrap();
    let d = Theme::default();
    assert_eq!(t.name(), "partial");
    assert_eq!(t.slot(Slot::Accent), Color::Red);
    assert_eq!(t.slot(Slot::Fg), d.slot(Slot::Fg));
    assert_eq!(t.border_type(), d.border_type());
    let empty = Theme::from_toml_str("", "empty.toml").unwrap();
    assert!(same_look(&empty, &d));
}

#[test]
fn cycle_is_an_error_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", "name = \"a\"\nbase = \"b\"\n");
    write(dir.path(), "b.toml", "name = \"b\"\nbase = \"a\"\n");
    let set = ThemeSet::load_dir(dir.path()).unwrap();
    let err = set.resolve("a").unwrap_err();
    assert!(matches!(err, ThemeError::Cycle { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("b.toml:2:8: base: inheritance cycle"), "{msg}");
    assert!(msg.contains("a.toml") && msg.contains("a ("), "{msg}");
    // the fallback turns it into a warning
    let (theme, warning) = fallback(set.resolve("b"));
    assert_eq!(theme.name(), "default");
    assert!(warning.unwrap().contains("inheritance cycle"));
}

#[test]
fn theme_cannot_be_its_own_base() {
    let err = err_of("name = \"me\"\nbase = \"me\"\n", "me.toml");
    assert!(matches!(err, ThemeError::Cycle { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("me.toml:2:8: base: inheritance cycle"));
}

#[test]
fn missing_base_names_file_and_suggests() {
    let err = err_of("name = \"x\"\nbase = \"defualt\"\n", "themes/x.toml");
    let ThemeError::MissingBase {
        ref base,
        ref suggestion,
        line,
        column,
        ..
    } = err
    else {
        panic!("expected MissingBase, got {err:?}")
    };
    assert_eq!(base, "defualt");
    assert_eq!(suggestion.as_deref(), Some("default"));
    assert_eq!((line, column), (2, 8));
    let msg = err.to_string();
    assert!(
        msg.starts_with("themes/x.toml:2:8: base: no theme named \"defualt\""),
        "{msg}"
    );
    assert!(msg.contains("did you mean `default`?"), "{msg}");
    assert!(
        msg.contains("known themes: default, high-contrast, light, prod-red"),
        "{msg}"
    );
}

#[test]
fn broken_base_reports_the_base_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "child.toml", "base = \"parent\"\n");
    write(dir.path(), "parent.toml", "[slots]\nerror = 12\n");
    let err = ThemeSet::load_dir(dir.path())
        .unwrap()
        .resolve("child")
        .unwrap_err();
    assert!(
        err.to_string().contains("parent.toml:2:9: slots.error"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Validation errors
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_slot_with_did_you_mean() {
    let err = err_of(
        "name = \"bad\"\n\n[slots]\nacent = \"cyan\"\n",
        "themes/bad.toml",
    );
    assert_eq!(
        err.to_string(),
        "themes/bad.toml:4:1: slots.acent: unknown slot (did you mean `accent`?)"
    );
    let p = &err.problems()[0];
    assert_eq!((p.line, p.column, p.key.as_str()), (4, 1, "slots.acent"));
    // no close match: list the known slots
    let err = err_of("[slots]\nzzqqxx = \"red\"\n", "t.toml");
    assert!(
        err.to_string().contains("known slots: fg, bg, accent"),
        "{err}"
    );
}

#[test]
fn bad_colour_names_file_and_key() {
    let err = err_of("[slots]\nerror  =  \"#12zz45\"\n", "themes/bad.toml");
    let msg = err.to_string();
    assert!(
        msg.starts_with("themes/bad.toml:2:11: slots.error: \"#12zz45\" is not a colour ("),
        "{msg}"
    );
    let err = err_of("[slots]\nerror = \"lightredd\"\n", "t.toml");
    assert!(
        err.to_string().contains("did you mean `lightred`?"),
        "{err}"
    );
    let err = err_of("[widgets.header]\nfg = \"acent\"\n", "t.toml");
    assert_eq!(
        err.to_string(),
        "t.toml:2:6: widgets.header.fg: \"acent\" is neither a slot nor a colour (did you mean `accent`?)"
    );
}

#[test]
fn colour_forms_are_accepted() {
    let t = Theme::from_toml_str(
        "[slots]\nfg = \"reset\"\nbg = \"#1E1E2E\"\naccent = \"238\"\nerror = \"Light Red\"\n\
         [widgets.log]\nfg = \"#010203\"\nbg = \"gauge\"\nitalic = true\ndim = true\nreversed = true\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(t.slot(Slot::Fg), Color::Reset);
    assert_eq!(t.slot(Slot::Bg), Color::Rgb(0x1e, 0x1e, 0x2e));
    assert_eq!(t.slot(Slot::Accent), Color::Indexed(238));
    assert_eq!(t.slot(Slot::Error), Color::LightRed);
    assert_eq!(
        t.style(Element::Log),
        Style::default()
            .fg(Color::Rgb(1, 2, 3))
            .bg(t.slot(Slot::Gauge))
            .add_modifier(Modifier::ITALIC | Modifier::DIM | Modifier::REVERSED)
    );
}

#[test]
fn wrong_types_are_reported() {
    let text = "dark = \"yes\"\nname = 3\n[slots]\naccent = 5\n[widgets.header]\nbold = \"true\"\n[widgets]\nfooter = 1\n";
    let err = err_of(text, "w.toml");
    let lines: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        vec![
            "w.toml:1:8: dark: expected a boolean, found string",
            "w.toml:2:8: name: expected a string, found integer",
            "w.toml:4:10: slots.accent: expected a string, found integer (write colour indices as strings, e.g. \"238\")",
            "w.toml:6:8: widgets.header.bold: expected a boolean, found string",
            "w.toml:8:10: widgets.footer: expected a table like { fg = \"accent\", bold = true } or a colour string, found integer (write colour indices as strings, e.g. \"238\")",
        ]
    );
    let err = err_of("slots = \"x\"\n", "w.toml");
    assert_eq!(
        err.to_string(),
        "w.toml:1:9: slots: expected a table, found string"
    );
}

#[test]
fn unknown_widget_field_and_top_level_key() {
    let text =
        "nmae = \"x\"\ncolour = 1\n[widgets.heder]\nfg = \"red\"\n[widgets.footer]\nbolt = true\n";
    let err = err_of(text, "u.toml");
    let msg = err.to_string();
    assert!(
        msg.contains("u.toml:1:1: nmae: unknown key (did you mean `name`?)"),
        "{msg}"
    );
    assert!(
        msg.contains("u.toml:2:1: colour: unknown key (known keys: name,"),
        "{msg}"
    );
    assert!(
        msg.contains("u.toml:3:10: widgets.heder: unknown widget (did you mean `header`?)"),
        "{msg}"
    );
    assert!(
        msg.contains("u.toml:6:1: widgets.footer.bolt: unknown field (did you mean `bold`?)"),
        "{msg}"
    );
    let err = err_of("border_type = \"bold\"\n", "u.toml");
    assert!(err
        .to_string()
        .contains("is not a border type (expected one of plain, rounded, double, thick)"));
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let text = "[slots]\nacent = \"red\"\nerror = \"nope\"\nwarning = true\n[widgets.nope]\n";
    let err = err_of(text, "many.toml");
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "slots.acent",
            "slots.error",
            "slots.warning",
            "widgets.nope"
        ]
    );
    assert_eq!(err.to_string().lines().count(), 4);
}

#[test]
fn toml_syntax_errors_have_line_and_column() {
    let err = err_of(
        "name = \"x\"\n[slots]\naccent = \"red\nfg = \"white\"\n",
        "syn.toml",
    );
    assert!(matches!(err, ThemeError::Invalid { .. }));
    let p = &err.problems()[0];
    assert_eq!(p.origin, "syn.toml");
    assert_eq!(p.line, 3, "{err}");
    assert!(p.message.starts_with("TOML syntax:"), "{err}");
    // duplicate keys are syntax errors too
    let err = err_of("[slots]\nfg = \"red\"\nfg = \"blue\"\n", "dup.toml");
    assert_eq!(err.problems()[0].line, 3, "{err}");
}

#[test]
fn names_must_not_be_paths() {
    let err = err_of("name = \"a/b\"\nbase = \"x.toml\"\n", "n.toml");
    assert_eq!(err.problems().len(), 2, "{err}");
    assert!(err
        .to_string()
        .contains("n.toml:2:8: base: \"x.toml\" must be a theme name, not a path"));
}

// ---------------------------------------------------------------------------------------
// Theme sets, names and paths
// ---------------------------------------------------------------------------------------

#[test]
fn directory_overrides_builtins_by_name_and_isolates_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "light.toml", "base = \"light\"\n"); // self-base by name: cycle
    write(
        dir.path(),
        "my-light.toml",
        "name = \"default\"\n[slots]\naccent = \"red\"\n",
    );
    write(dir.path(), "broken.toml", "[slots\n");
    write(dir.path(), "notes.txt", "not a theme");
    let set = ThemeSet::load_dir(dir.path()).unwrap();
    // registered by `name`, replacing the built-in default
    let d = set.resolve("default").unwrap();
    assert_eq!(d.slot(Slot::Accent), Color::Red);
    assert!(set.origin("default").unwrap().ends_with("my-light.toml"));
    assert!(set
        .origin("high-contrast")
        .unwrap()
        .starts_with("(built-in)"));
    // other themes are unaffected by the broken file
    assert!(set.resolve("high-contrast").is_ok());
    let err = set.resolve("broken").unwrap_err();
    assert!(err.to_string().contains("broken.toml:1:"), "{err}");
    assert!(set.resolve("light").is_err());
    assert!(!set.names().iter().any(|n| n == "notes"));
}

#[test]
fn duplicate_names_in_a_directory_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "one.toml", "name = \"same\"\n");
    write(dir.path(), "two.toml", "name = \"same\"\n");
    let err = ThemeSet::load_dir(dir.path())
        .unwrap()
        .resolve("same")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("two.toml:1:8: name: theme \"same\" is also defined by"),
        "{msg}"
    );
    assert!(msg.contains("one.toml"), "{msg}");
}

#[test]
fn missing_directory_gives_the_builtins() {
    let set = ThemeSet::load_dir("/nonexistent/wavelift/themes").unwrap();
    assert_eq!(
        set.names(),
        ["default", "high-contrast", "light", "prod-red"]
    );
}

#[test]
fn resolve_by_name_or_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "mine.toml",
        "base = \"light\"\n[slots]\ntitle = \"blue\"\n",
    );
    let set = ThemeSet::builtin();
    let by_path = set.resolve(path.to_str().unwrap()).unwrap();
    assert_eq!(by_path.name(), "mine");
    assert_eq!(by_path.slot(Slot::Title), Color::Blue);
    // ".toml" suffix means path, even without a slash
    let err = set.resolve("light.toml").unwrap_err();
    assert!(matches!(err, ThemeError::Io { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("light.toml: cannot read theme file"));
    // an unknown name suggests a close one
    let err = set.resolve("hihg-contrast").unwrap_err();
    let ThemeError::UnknownTheme { ref suggestion, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(suggestion.as_deref(), Some("high-contrast"));
    assert!(err
        .to_string()
        .contains("known themes: default, high-contrast, light, prod-red"));
    assert!(Theme::builtin("nope").is_none());
    assert!(matches!(
        Theme::load(dir.path().join("absent.toml")),
        Err(ThemeError::Io { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// NO_COLOR and fallback
// ---------------------------------------------------------------------------------------

#[test]
fn no_color_has_no_styles() {
    let t = Theme::no_color();
    assert!(t.is_no_color());
    for w in Element::ALL {
        assert_eq!(t.style(*w), Style::default(), "{w}");
    }
    for s in Slot::ALL {
        assert_eq!(t.slot(*s), Color::Reset, "{s}");
    }
}

#[test]
fn honour_no_color_follows_the_convention() {
    let light = || Theme::builtin("light").unwrap();
    assert!(honour_no_color(light(), Some("1")).is_no_color());
    assert!(
        honour_no_color(light(), Some("0")).is_no_color(),
        "any non-empty value"
    );
    assert_eq!(honour_no_color(light(), Some("")).name(), "light");
    assert_eq!(honour_no_color(light(), None).name(), "light");
}

#[test]
fn fallback_gives_default_and_a_visible_warning() {
    let (theme, warning) = fallback(Theme::from_toml_str(
        "[slots]\nerror = \"#12zz45\"\n",
        "themes/bad.toml",
    ));
    assert_eq!(theme, Theme::default());
    let warning = warning.expect("a warning");
    assert!(
        warning.contains("using the built-in `default` theme"),
        "{warning}"
    );
    assert!(
        warning.contains("themes/bad.toml:2:9: slots.error"),
        "{warning}"
    );
    let (theme, warning) = fallback(Ok(Theme::builtin("light").unwrap()));
    assert_eq!(theme.name(), "light");
    assert!(warning.is_none());
}

// ---------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------

fn exercise(result: Result<Theme, ThemeError>) {
    match result {
        Ok(t) => {
            for w in Element::ALL {
                let _ = t.style(*w);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            assert!(!msg.contains('\u{1b}'), "escape sequence in {msg:?}");
        }
    }
}

#[test]
fn every_prefix_of_the_shipped_themes_is_handled() {
    for name in SHIPPED {
        let text = fs::read_to_string(themes_dir().join(format!("{name}.toml"))).unwrap();
        for (i, _) in text.char_indices() {
            exercise(Theme::from_toml_str(&text[..i], "prefix.toml"));
        }
    }
}

fn theme_line() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "name",
        "base",
        "dark",
        "border_type",
        "description",
        "slots",
        "accent",
        "fg",
        "bg",
        "bold",
        "mode_live",
        "nme",
        "\u{1b}[31m",
        "header",
        "widgets.header.fg",
        "slots.accent",
        "widgets.log",
        "",
    ]);
    let values = prop::sample::select(vec![
        "\"default\"",
        "\"light\"",
        "\"accent\"",
        "\"#12zz45\"",
        "\"#ffffff\"",
        "\"238\"",
        "true",
        "3",
        "1.5",
        "[1, 2]",
        "{ fg = \"red\", bold = true }",
        "{ fg = 1 }",
        "\"\"",
        "\"a/b\"",
        "\"thick\"",
        "\"é\u{1b}\"",
        "1979-05-27",
    ]);
    prop_oneof![
        (keys.clone(), values).prop_map(|(k, v)| format!("{k} = {v}")),
        keys.clone().prop_map(|k| format!("[{k}]")),
        keys.prop_map(|k| format!("[widgets.{k}]")),
        ".{0,20}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        exercise(Theme::from_toml_str(&text, "fuzz.toml"));
    }

    #[test]
    fn theme_like_text_never_panics(lines in prop::collection::vec(theme_line(), 0..12)) {
        let text = lines.join("\n");
        exercise(Theme::from_toml_str(&text, "fuzz.toml"));
        let mut set = ThemeSet::builtin();
        if let Ok(name) = set.insert_toml(&text, "fuzz.toml") {
            exercise(set.resolve(&name));
        }
    }
}
