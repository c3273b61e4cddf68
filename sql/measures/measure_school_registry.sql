-- measure_school_registry: school counts by ownership, from the bureau's registry, so a
-- region's sum is its number of schools.
-- Output grain: one row per (year, school_code, measure_id).
with registry as (
    select * from core_school__yearly_registry
),

per_school as (
    select
        year,
        school_code,
        1::double as school_count,
        (ownership = '公办')::int::double as public_school_count,
        (ownership = '民办')::int::double as private_school_count
    from registry
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
