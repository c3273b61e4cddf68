-- create_core_school__yearly_registry: the schools of each year with their region, one row
-- per (year, school_code), from the bureau's accepted school_registry uploads.
with registry as (
    select * from curated_school_registry
),

final as (
    select
        year,
        school_code,
        any_value(school_name) as school_name,
        any_value(province_name) as province_name,
        any_value(city_name) as city_name,
        any_value(county_name) as county_name,
        any_value(ownership) as ownership
    from registry
    group by year, school_code
)

select * from final
