//! From a source's configuration to its line parser; and the checks `darkroom validate` runs
//! on parser settings.

use darkroom_config::{ClientIp, Diagnostics, Project, SourceConfig, SourceKind};
use darkroom_logs::jsonl::{FieldType, JsonlOptions, JsonlParser, NestedMode, TimestampFormat};
use darkroom_logs::{IpPolicy, LogParser, NginxFormat, NginxParser, ParseOptions};

use crate::{Result, SourceError};

fn ip_policy(ip: &ClientIp) -> IpPolicy {
    match ip {
        ClientIp::Keep => IpPolicy::Keep,
        ClientIp::Truncate => IpPolicy::Truncate {
            v4_prefix: 24,
            v6_prefix: 48,
        },
        ClientIp::Hash { salt } => IpPolicy::Hash {
            salt: salt.as_bytes().to_vec(),
        },
    }
}

fn jsonl_options(
    j: &darkroom_config::JsonlSourceConfig,
) -> std::result::Result<JsonlOptions, String> {
    let timestamp_format: TimestampFormat = j
        .timestamp_format
        .get_ref()
        .parse()
        .map_err(|e: darkroom_logs::jsonl::JsonlError| e.to_string())?;
    let mut fields = Vec::new();
    for (name, ty) in &j.fields {
        let ty: FieldType = ty
            .get_ref()
            .parse()
            .map_err(|e: darkroom_logs::jsonl::JsonlError| format!("field `{name}`: {e}"))?;
        fields.push((name.clone(), ty));
    }
    Ok(JsonlOptions {
        timestamp_field: j.timestamp_field.clone(),
        timestamp_format,
        nested: match j.nested {
            darkroom_config::NestedMode::Flatten => NestedMode::Flatten,
            darkroom_config::NestedMode::Json => NestedMode::Json,
        },
        fields,
    })
}

/// The column holding client IPs that the ingest must mask after parsing (jsonl sources with
/// `client_ip_field`; nginx parsers mask `$remote_addr` themselves), and the masker.
pub fn post_parse_ip(source: &SourceConfig) -> Option<(String, darkroom_logs::IpMasker)> {
    match &source.kind {
        SourceKind::Jsonl(j) if j.client_ip != ClientIp::Keep => {
            let field = j.client_ip_field.as_ref()?;
            Some((
                field.replace('.', "_"),
                darkroom_logs::IpMasker::new(ip_policy(&j.client_ip)),
            ))
        }
        _ => None,
    }
}

/// Build the parser of a source, for a project time zone.
pub fn build_parser(source: &SourceConfig, timezone: chrono_tz::Tz) -> Result<Box<dyn LogParser>> {
    let invalid = |message: String| SourceError::Config {
        source_name: source.name().to_string(),
        message,
    };
    match &source.kind {
        SourceKind::Nginx(n) => {
            let format = NginxFormat::from_name_or_format(n.format.get_ref())
                .map_err(|e| invalid(format!("format: {e}")))?;
            let options = ParseOptions {
                timezone,
                ip_policy: ip_policy(&n.client_ip),
                ..ParseOptions::default()
            };
            let mut alternates = Vec::new();
            for f in &n.also_formats {
                alternates.push(
                    NginxFormat::from_name_or_format(f.get_ref())
                        .map_err(|e| invalid(format!("also_formats: {e}")))?,
                );
            }
            let parser = NginxParser::new(format, options)
                .with_alternates(alternates)
                .map_err(|e| invalid(format!("also_formats: {e}")))?;
            Ok(Box::new(parser))
        }
        SourceKind::Jsonl(j) => {
            let options = jsonl_options(j).map_err(invalid)?;
            let parse = ParseOptions {
                timezone,
                ip_policy: ip_policy(&j.client_ip),
                ..ParseOptions::default()
            };
            let parser = JsonlParser::new(options, parse).map_err(|e| invalid(e.to_string()))?;
            Ok(Box::new(parser))
        }
    }
}

/// The parser settings of every source, checked with file and line.
pub fn validate(project: &Project) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for source in &project.sources {
        match &source.kind {
            SourceKind::Nginx(n) => {
                let main = match NginxFormat::from_name_or_format(n.format.get_ref()) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        diags.push(project.file.error(n.format.span(), format!("format: {e}")));
                        None
                    }
                };
                for alt in &n.also_formats {
                    match NginxFormat::from_name_or_format(alt.get_ref()) {
                        Err(e) => {
                            diags.push(project.file.error(alt.span(), format!("also_formats: {e}")))
                        }
                        Ok(f) => {
                            if let Some(main) = &main
                                && let Err(e) =
                                    NginxParser::new(main.clone(), ParseOptions::default())
                                        .with_alternates(vec![f])
                            {
                                diags.push(
                                    project.file.error(alt.span(), format!("also_formats: {e}")),
                                );
                            }
                        }
                    }
                }
            }
            SourceKind::Jsonl(j) => {
                if let Some(field) = &j.client_ip_field
                    && j.fields.get(field).map(|t| t.get_ref().as_str()) != Some("string")
                {
                    diags.push(project.file.error(
                        source.span.clone(),
                        format!(
                            "client_ip_field `{field}` must be declared in `fields` as \"string\""
                        ),
                    ));
                }
                if let Err(e) = j.timestamp_format.get_ref().parse::<TimestampFormat>() {
                    diags.push(project.file.error(j.timestamp_format.span(), e.to_string()));
                } else if let Ok(options) = jsonl_options(j)
                    && let Err(e) = JsonlParser::new(options, ParseOptions::default())
                {
                    diags.push(project.file.error(source.span.clone(), e.to_string()));
                }
            }
        }
    }
    diags
}
